"""Check that an environment with only `stseg-models` installed (and what it pulls in) predicts.

    python standalone_predict_check.py WORKDIR

Run by `nox -s standalone` in a fresh virtual environment holding nothing but the stseg-models
wheel and its dependencies. It writes a random-weight checkpoint and a synthetic coloured room,
runs the installed `stseg-models predict` console script on it, and validates the outputs: one
label per point, NYU40 ids in the ScanNet benchmark `.txt`, and the coloured PLY. Not collected by
pytest (no `test_` prefix). Exits non-zero with a message on the first failed check.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np


def fail(message: str) -> None:
    sys.exit(f"standalone check FAILED: {message}")


def main(workdir: Path) -> None:
    import torch

    from stseg_data.labels import SCANNET_NYU40_IDS
    from stseg_data.ply import read_ply, write_ply
    from stseg_models import build_model
    from stseg_models.checkpoint import dataset_preset, save_checkpoint

    workdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    weights = workdir / "random_scannet.safetensors"
    save_checkpoint(weights, build_model("Res16UNet14A", 3, 20), dataset_preset("scannet"))

    rng = np.random.default_rng(0)
    n = 5000
    xyz = np.concatenate(
        [rng.uniform(0, 2, size=(n, 2)), rng.uniform(0, 0.05, size=(n, 1))], axis=1
    )
    scene = workdir / "scene0000_00_vh_clean_2.ply"
    write_ply(scene, xyz, rng.uniform(0, 1, size=(n, 3)), overwrite=True)

    exe = shutil.which("stseg-models")
    if exe is None:
        fail("the `stseg-models` console script is not on PATH")
    out = workdir / "predictions"
    cmd = [exe, "predict", str(scene), "--weights", str(weights), "--out", str(out)]
    cmd += ["--format", "txt", "--rotations", "2", "--overwrite"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        fail(f"`{' '.join(cmd)}` exited {proc.returncode}: {proc.stderr.strip()}")

    ids = np.loadtxt(out / "scene0000_00.txt", dtype=np.int64)
    if ids.shape != (n,):
        fail(f"{len(ids)} labels in the .txt for {n} points")
    if not set(np.unique(ids)) <= set(SCANNET_NYU40_IDS):
        fail(
            f"labels outside the ScanNet NYU40 ids: {sorted(set(np.unique(ids)) - set(SCANNET_NYU40_IDS))}"
        )
    cloud = read_ply(out / "scene0000_00_vh_clean_2_pred.ply")
    if len(cloud) != n or cloud.rgb is None or not np.array_equal(cloud.labels, ids):
        fail("the coloured PLY does not hold one coloured, labelled vertex per input point")
    print(f"standalone check passed: {n} points predicted, outputs in {out}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
