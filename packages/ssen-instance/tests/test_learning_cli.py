"""The SSEN embedding learns: `ssen-instance train` then `eval` on the same two toy rooms.

The run's final checkpoint records every step's discriminative loss (`trainer.recent_losses`):
the last five steps' mean must be under a quarter of the first five's. Clustering the trained
embedding of its training rooms must then find their instances (AP50 >= 0.8; semantics from the
scene files, so the score is the embedding's alone). The control run trains for a single step:
the same evaluation must miss the threshold, which shows the assertion can fail.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssen_instance.toy import write_toy_scenes
from stseg_data.torch_files import load_weights_only

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
TOOL = str(Path(sys.executable).parent / "ssen-instance")
ITERATIONS = 150
TRAIN = ["--model", "Res16UNet14A", "--voxel-size", "0.1", "--batch-size", "2",
         "--lr", "0.01", "--save-freq", "100000"]  # fmt: skip
EVAL = ["--stored-semantic", "--min-cluster-size", "40", "--threads", "1"]


def _cli(*args: str | Path) -> float:
    """Run the tool; returns its CPU seconds (its wall time on an idle core: one thread)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _train_and_eval(root: Path, data: Path, name: str, iterations: int) -> tuple[list, dict]:
    run, out = root / f"run-{name}", root / f"eval-{name}"
    tic = time.perf_counter()
    cpu = _cli("train", "--data", data, "--out", run, "--max-iter", str(iterations), *TRAIN)
    cpu += _cli("eval", data, "--instance-weights", run / "instance.pt", "--out", out, *EVAL)
    payload = load_weights_only(run / "checkpoints" / "final.pth")
    losses = [loss for _, loss in payload["trainer"]["recent_losses"]]
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"{name}: {time.perf_counter() - tic:.1f} s wall, {cpu:.1f} s CPU, "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}, metrics {metrics}")  # fmt: skip
    return losses, metrics


@pytest.fixture(scope="module")
def rooms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ssen-learning")
    (root / "data").mkdir()
    write_toy_scenes(root / "data", 2)
    return root


def test_embedding_loss_falls_and_finds_its_training_instances(rooms: Path) -> None:
    losses, metrics = _train_and_eval(rooms, rooms / "data", "learns", ITERATIONS)
    assert len(losses) == ITERATIONS
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.25 * first, (first, last)
    assert metrics["ap50"] >= 0.8, metrics


def test_an_untrained_embedding_misses_the_threshold(rooms: Path) -> None:
    _, metrics = _train_and_eval(rooms, rooms / "data", "one-step", 1)
    assert metrics["ap50"] < 0.8, metrics
