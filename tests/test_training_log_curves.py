"""`stseg-viz curves RUN` and `stseg-viz metrics` on a run `stseg-train` wrote, as users type them.

The trainer's `log.jsonl` is the file stseg-viz reads: a training run logs every iteration
(`log_freq=1`) and each validation, a run killed after its checkpoint and resumed holds each
iteration once with the straight run's losses (resume is bitwise), and `curves` draws it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from stseg_train.crashtest import run_command

pytestmark = [pytest.mark.timeout(600)]
BIN = Path(sys.executable).parent
N, K = 4, 2  # iterations; checkpoint (and validation) every K
TRAIN = [str(BIN / "stseg-train"), "synthetic", "--model", "Res16UNet14A", "--voxel-size", "0.4",
         "--max-iter", str(N), "--batch-size", "1",
         "--set", "synthetic_train_scenes=2", "--set", "synthetic_val_scenes=1",
         "--set", "progress=false", "--set", "tensorboard=false", "--set", "threads=1",
         "--set", "log_freq=1", "--set", f"save_freq={K}", "--set", f"val_freq={K}"]  # fmt: skip


def _records(run: Path) -> list[dict]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("straight") / "run"
    done = run_command([*TRAIN, "--out", str(run)])
    assert done.returncode == 0, done.stdout
    return run


def test_the_log_holds_every_iteration_and_validation(straight: Path) -> None:
    records = _records(straight)
    steps = [r for r in records if "loss" in r]
    validations = [r for r in records if "val_miou" in r]
    assert [r["iter"] for r in steps] == list(range(1, N + 1))
    assert all(r["loss"] > 0 and 0 <= r["accuracy"] <= 1 and r["lr"] > 0 for r in steps)
    assert [r["iter"] for r in validations] == list(range(K, N + 1, K))
    final = json.loads((straight / "metrics.json").read_text())
    assert validations[-1]["val_miou"] == pytest.approx(final["miou"])


def test_a_resumed_run_logs_each_iteration_once(straight: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # the process dies right after step N (os._exit): iterations K+1..N-1 are logged, the last
    # checkpoint is K's, so the resumed run repeats them
    died = run_command([*TRAIN, "--out", str(run)], env={"STSEG_TRAIN_FAULT": f"exit:0:{N}"})
    assert died.returncode == 13, died.stdout
    assert [r["iter"] for r in _records(run) if "loss" in r] == list(range(1, N))
    done = run_command([str(BIN / "stseg-train"), "synthetic", "--resume", str(run)])
    assert done.returncode == 0, done.stdout
    ours = [(r["iter"], r["loss"]) for r in _records(run) if "loss" in r]
    theirs = [(r["iter"], r["loss"]) for r in _records(straight) if "loss" in r]
    assert ours == theirs


def test_curves_draws_the_trainers_log(straight: Path, tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    done = run_command([str(BIN / "stseg-viz"), "curves", str(straight), "--out", str(out)])
    assert done.returncode == 0, done.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_metrics_draws_the_trainers_metrics_json(straight: Path, tmp_path: Path) -> None:
    out = tmp_path / "charts"
    metrics = straight / "metrics.json"
    done = run_command([str(BIN / "stseg-viz"), "metrics", str(metrics), "--out", str(out)])
    assert done.returncode == 0, done.stdout
    drawn = sorted(p.name for p in out.glob("*.png"))
    assert "iou.png" in drawn, drawn
    assert all((out / name).stat().st_size > 5000 for name in drawn)
