"""Training learns: a small network overfits two synthetic ScanNet rooms through the CLI.

`stseg-train scannet` (a subprocess, one thread) trains on two rooms written by `stseg-data synth`
and preprocessed by `stseg-data preprocess`; `stseg-train eval` then scores the run on the same
rooms' true labels. A working trainer reaches >= 0.9 voxel accuracy on them (issue #25), and the
accuracy `eval` measures is the one the last training batches reported (they are the same voxels).
The control run trains on the same rooms with each room's labels shuffled among its points (a
test-only input folder, no production flag): nothing is learnable beyond the class frequencies,
so that threshold must be missed, which shows the assertion can fail (a sign error in a gradient
or a wrong label map lands here too).

The rooms are centred horizontally first (test-only copies). `eval`, like stseg_models.Segmenter,
subtracts each scene's horizontal mean before voxelizing; training does not, and without
augmentation (no random translation or rotation) it only ever sees the scene's own grid. On rooms
whose mean is not a whole number of voxels, `eval` therefore voxelizes on a grid shifted by a
fraction of a voxel (scene0001: 3837 training voxels, 3667 at eval) that the overfit network has
never seen. Measured on one checkpoint of the uncentred rooms: 0.942 voxel accuracy on the
training voxels, 0.873 on the eval voxels, while batch statistics instead of the running ones
change either by under 0.01. Centred rooms make both grids the same (identical voxels and voxel
labels, checked), so the test scores the network on what it was trained on (issue #25 item 4).
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # wall time on a busy machine
BIN = Path(sys.executable).parent
# Small and fast: 20 cm voxels, Adam at 1e-2 without augmentation, evaluation only at the end.
CONFIG = """\
model: Res16UNet14A
voxel_size: 0.2
batch_size: 2
optimizer: adam
lr: 0.01
bn_momentum: 0.1
augment: false
voxel_labels: majority
max_iter: {iters}
train_split: fit
val_split: fit
save_freq: 100000
val_freq: 100000
log_freq: 10
progress: false
tensorboard: false
threads: 1
num_workers: 0
"""
ITERATIONS = 40
SCENES = ("train/scene0001_00.ply", "train/scene0002_00.ply")
PLY_TYPES = {"float": "<f4", "uchar": "u1", "ushort": "<u2", "int": "<i4"}


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _rewrite_ply(src: Path, dst: Path, edit: Callable[[np.ndarray], None]) -> None:
    """Copy a binary preprocessed PLY with `edit` applied in place to its vertex records."""
    raw = src.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    fields = [
        (parts[2], PLY_TYPES[parts[1]])
        for parts in (line.split() for line in raw[:end].decode("ascii").splitlines())
        if parts[:1] == ["property"]
    ]
    body = np.frombuffer(raw[end:], dtype=np.dtype(fields)).copy()
    edit(body)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(raw[:end] + body.tobytes())


def _centre_horizontally(body: np.ndarray) -> None:
    for axis in ("x", "y"):
        body[axis] -= body[axis].astype(np.float64).mean()


def _shuffler(seed: int) -> Callable[[np.ndarray], None]:
    def shuffle(body: np.ndarray) -> None:
        _centre_horizontally(body)
        body["label"] = np.random.default_rng(seed).permutation(body["label"])

    return shuffle


@pytest.fixture(scope="module")
def rooms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("learning")
    _cli(BIN / "stseg-data", "synth", "scannet", root / "raw", "--scenes", "3", "--seed", "3")
    _cli(BIN / "stseg-data", "preprocess", "scannet", root / "raw", root / "prepared")
    split = "".join(f"{s}\n" for s in SCENES)
    for name in ("true", "shuffled"):
        (root / name).mkdir()
        (root / name / "fit.txt").write_text(split)
    for k, scene in enumerate(SCENES):
        _rewrite_ply(root / "prepared" / scene, root / "true" / scene, _centre_horizontally)
        _rewrite_ply(root / "prepared" / scene, root / "shuffled" / scene, _shuffler(k))
    config = root / "config.yaml"
    config.write_text(CONFIG.format(iters=ITERATIONS))
    return {"root": root, "true": root / "true", "shuffled": root / "shuffled", "config": config}


def _last_batch_accuracy(log: str) -> float:
    """The training accuracy the run logged at its last step (`iter N loss L acc A ...`)."""
    found = re.findall(rf"iter {ITERATIONS} loss \S+ acc ([0-9.]+)", log)
    assert found, f"no log line for iteration {ITERATIONS} in:\n{log}"
    return float(found[-1])


def _train_and_score(rooms: dict[str, Path], data: Path, name: str) -> tuple[dict, dict, float]:
    run = rooms["root"] / f"run-{name}"
    tic, cpu = time.perf_counter(), _children_cpu()
    trained = _cli(BIN / "stseg-train", "scannet", "--data", data, "--out", run,
                   "--config", rooms["config"])  # fmt: skip
    seconds, cpu = time.perf_counter() - tic, _children_cpu() - cpu
    _cli(BIN / "stseg-train", "eval", run, "--data", rooms["true"], "--split", "fit")
    metrics = json.loads((run / "metrics.json").read_text())
    scored = json.loads((run / "eval_fit.json").read_text())
    batches = _last_batch_accuracy(trained.stdout + trained.stderr)
    # CPU seconds of the one-thread run = its wall time on an idle core (a busy machine's wall
    # time says more about the neighbours)
    accuracy = scored["voxels"]["overall_accuracy"]
    print(f"{name}: {seconds:.1f} s wall, {cpu:.1f} s CPU, last training batch accuracy "
          f"{batches:.3f}, true-label voxel accuracy {accuracy:.4f}")  # fmt: skip
    return metrics, scored, batches


# Measured (2 rooms, 40 steps, seeds 42 / 1 / 2): eval voxel accuracy 0.955 / 0.943 / 0.940, last
# training batch 0.957 / 0.949 / 0.947, 34 / 36 / 40 CPU s per training run on a loaded machine;
# the shuffled-label control 0.36. Time is printed, not asserted (tests assert correctness).
REACHED = 0.9
# eval scores the training voxels with the final weights and running batch-norm statistics; the
# last batch was scored with the weights one (tiny, end-of-poly-schedule) step earlier and batch
# statistics: measured 0.002 to 0.007 apart. The uncentred rooms' grid mismatch: 0.946 vs 0.873.
TRAIN_EVAL_GAP = 0.03


def test_small_net_overfits_its_training_rooms(rooms: dict[str, Path]) -> None:
    metrics, scored, batches = _train_and_score(rooms, rooms["true"], "learns")
    assert metrics["iteration"] == ITERATIONS and metrics["scenes"] == len(SCENES)
    assert metrics["voxels"]["overall_accuracy"] >= REACHED, metrics["voxels"]
    assert scored["voxels"]["overall_accuracy"] >= REACHED, scored["voxels"]
    assert abs(scored["voxels"]["overall_accuracy"] - batches) <= TRAIN_EVAL_GAP, (
        f"eval {scored['voxels']['overall_accuracy']:.4f} vs last training batch {batches:.4f}"
    )


def test_shuffled_labels_do_not_reach_the_threshold(rooms: dict[str, Path]) -> None:
    _, scored, _ = _train_and_score(rooms, rooms["shuffled"], "shuffled")
    # the most frequent class (wall) alone is ~0.35 of the voxels
    assert scored["voxels"]["overall_accuracy"] < 0.7, scored["voxels"]
