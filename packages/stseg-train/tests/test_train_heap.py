"""The trainer's heap modes: per-step trim (default) or retaining freed memory (`heap_mode=retain`).

Both are process-wide glibc settings, so each run is a fresh subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stseg_train.config import TrainConfig
from stseg_train.errors import TrainInputError
from stseg_train.options import RuntimeOptions, ToyOptions
from stseg_train.run import prepare_run_dir, worker
from stseg_train.toy import toy_components

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

RSS_AFTER_FREE = """
import json, sys
import numpy as np
from stseg_train.heap import retain_freed_memory
ok = retain_freed_memory() if sys.argv[1] == "retain" else None
def rss():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) / 1024
before = rss()
block = np.ones(256 * 2**20 // 8)  # 256 MiB, every page touched
del block
print(json.dumps({"accepted": ok, "kept_mib": rss() - before}))
"""


def _kept(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", RSS_AFTER_FREE, mode], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return json.loads(out.stdout)


@glibc
def test_retain_keeps_freed_pages_for_reuse() -> None:
    default, retained = _kept("default"), _kept("retain")
    assert retained["accepted"] is True
    # glibc maps a block this large on its own and unmaps it when freed; retained, it stays
    assert default["kept_mib"] < 32
    assert retained["kept_mib"] > 200


TRAIN = """
import json, sys
from pathlib import Path
import torch
from stseg_train.config import TrainConfig
from stseg_train.options import RuntimeOptions, ToyOptions
from stseg_train.run import prepare_run_dir, worker
from stseg_train.toy import toy_components
out, mode = Path(sys.argv[1]), sys.argv[2]
config = TrainConfig(dataset="synthetic", out=str(out), num_classes=4, batch_size=3, max_iter=6,
    save_freq=3, val_freq=1000, tensorboard=False, progress=False, threads=1,
    toy=ToyOptions(scenes=6, points=48), runtime=RuntimeOptions(heap_mode=mode))
prepare_run_dir(config, resume=False)
worker(config, toy_components, False)
"""


@glibc
def test_retain_trains_to_the_same_weights(tmp_path: Path) -> None:
    finals = {}
    for mode in ("trim", "retain"):
        subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / mode), mode], check=True)
        payload = torch.load(tmp_path / mode / "checkpoints" / "final.pth", weights_only=True)
        finals[mode] = payload["state_dict"]
    assert finals["trim"].keys() == finals["retain"].keys()
    for key, value in finals["trim"].items():
        assert torch.equal(value, finals["retain"][key]), key


def test_unknown_heap_mode_is_refused(tmp_path: Path) -> None:
    config = TrainConfig(dataset="synthetic", out=str(tmp_path / "run"), num_classes=4,
                         batch_size=3, max_iter=2, tensorboard=False, progress=False, threads=1,
                         toy=ToyOptions(scenes=3, points=48),
                         runtime=RuntimeOptions(heap_mode="keep"))  # fmt: skip
    with pytest.raises(TrainInputError, match="heap_mode must be one of trim, retain"):
        prepare_run_dir(config, resume=False)  # config validation, before the folder exists
    assert not (tmp_path / "run").exists()
    # the trainer checks it too, for configs built in code and handed to the worker directly
    with pytest.raises(TrainInputError, match="heap_mode must be one of trim, retain"):
        worker(config, toy_components, False)


def _cli(tmp_path: Path, out: str, mode: str) -> subprocess.CompletedProcess:
    from stseg_data.preprocess import preprocess
    from stseg_data.synth import write_synthetic

    prepared = tmp_path / "prepared"
    if not prepared.exists():
        write_synthetic("scannet", tmp_path / "raw", 3, seed=3)
        preprocess("scannet", tmp_path / "raw", prepared)
    command = [str(Path(sys.executable).parent / "stseg-train"), "scannet", "--data",
               str(prepared), "--out", str(tmp_path / out), "--model", "Res16UNet14A",
               "--voxel-size", "0.4", "--batch-size", "1", "--max-iter", "2",
               "--set", "progress=false", "--set", "tensorboard=false", "--set", "threads=1",
               "--set", f"runtime.heap_mode={mode}"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True)


@glibc
def test_cli_heap_mode_as_documented(tmp_path: Path) -> None:
    # the README's spelling: --set runtime.heap_mode=retain; same weights as the default
    for mode in ("retain", "trim"):
        done = _cli(tmp_path, mode, mode)
        assert done.returncode == 0, done.stderr[-2000:]
    a = torch.load(tmp_path / "retain" / "checkpoints" / "final.pth", weights_only=True)
    b = torch.load(tmp_path / "trim" / "checkpoints" / "final.pth", weights_only=True)
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    # an unknown mode: exit 2, one line, and no run folder left behind
    bad = _cli(tmp_path, "bad", "keep")
    errors = [line for line in (bad.stdout + bad.stderr).splitlines() if line.startswith("Error:")]
    assert bad.returncode == 2 and len(errors) == 1 and "heap_mode must be one of" in errors[0]
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()
