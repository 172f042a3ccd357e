"""`precision` (`--precision fp32|bf16|fp16`): the forward under autocast, in training, validation,
`eval` and `export-benchmark`.

- a bf16 run of the toy model takes different but close steps from the fp32 run (it ran in bf16,
  and learns the same), and is resumed exactly like an fp32 run: killed after checkpoint 2 and
  resumed, its losses equal a straight bf16 run's;
- an unknown precision is one line, exit 2, in a `--set`, a `--precision` and in the library;
- through the CLI: `stseg-train synthetic --precision bf16` records it in config.json,
  `stseg-train eval RUN --precision bf16` evaluates in bf16 within 0.02 mIoU of fp32, and
  `export-benchmark --precision bf16` writes the same scenes with labels that mostly agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stseg_train import TrainConfig, train
from stseg_train.config import validate
from stseg_train.errors import TrainInputError
from stseg_train.options import ToyOptions
from stseg_train.run import prepare_run_dir, worker
from stseg_train.toy import toy_components

TOOL = str(Path(sys.executable).parent / "stseg-train")


def _toy(out: Path, precision: str, max_iter: int = 6) -> TrainConfig:
    return TrainConfig(
        dataset="synthetic", out=str(out), num_classes=4, batch_size=2, max_iter=max_iter,
        save_freq=2, val_freq=1000, lr=0.05, tensorboard=False, progress=False, threads=1,
        precision=precision, toy=ToyOptions(scenes=8, points=64, bn=False, ignore=0.0),
    )  # fmt: skip


def _losses(run: Path) -> list[float]:
    final = torch.load(run / "checkpoints" / "final.pth", weights_only=True)
    return [loss for _, loss in final["trainer"]["recent_losses"]]


def test_bf16_training_takes_close_but_different_steps_and_resumes_exactly(tmp_path: Path) -> None:
    train(_toy(tmp_path / "fp32", "fp32"), toy_components)
    train(_toy(tmp_path / "bf16", "bf16"), toy_components)
    fp32, bf16 = _losses(tmp_path / "fp32"), _losses(tmp_path / "bf16")
    assert len(fp32) == len(bf16) == 6
    assert fp32 != bf16  # the forward ran in bf16
    assert bf16 == pytest.approx(fp32, rel=0.05)  # ... to bf16's precision
    assert bf16[-1] < bf16[0]  # and it learns
    # a bf16 run stopped after step 4 (its checkpoint) and resumed ends as the straight one
    split = _toy(tmp_path / "split", "bf16")
    prepare_run_dir(split, resume=False)
    worker(split, toy_components, False, until=4)
    assert not (tmp_path / "split" / "checkpoints" / "final.pth").exists()
    train(split, toy_components, resume=True)
    assert _losses(tmp_path / "split") == bf16
    config = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert config["precision"] == "bf16"


def test_an_unknown_precision_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrainInputError, match="precision must be fp32, bf16 or fp16"):
        validate(_toy(tmp_path / "x", "fp8"))
    for args in (["--precision", "fp8"], ["--set", "precision=fp8"]):
        done = subprocess.run([TOOL, "synthetic", "--out", str(tmp_path / "run"), *args],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "fp8" in done.stderr and len(done.stderr.strip().splitlines()) <= 3, done.stderr
        assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_precision_through_the_command_line(tmp_path: Path) -> None:
    run, data = tmp_path / "run", tmp_path / "data"
    tiny = ["--max-iter", "2", "--threads", "1", "--set", "synthetic_train_scenes=3",
            "--set", "synthetic_val_scenes=1", "--set", "eval_rotations=1",
            "--set", "progress=false", "--set", "tensorboard=false"]  # fmt: skip
    done = subprocess.run([TOOL, "synthetic", "--data", str(data), "--out", str(run),
                           "--precision", "bf16", *tiny],
                          capture_output=True, text=True, timeout=400)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"
    scores = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"eval_{precision}.json"
        done = subprocess.run([TOOL, "eval", str(run), "--data", str(data / "prepared"),
                               "--precision", precision, "--out", str(out)],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(out.read_text())
        assert result["precision"] == precision
        scores[precision] = result["miou"]
    assert abs(scores["bf16"] - scores["fp32"]) < 0.02, scores
    # export-benchmark --precision: the same scenes, labels that mostly agree with fp32's
    exported = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"export_{precision}"
        done = subprocess.run([TOOL, "export-benchmark", str(run), "--data", str(data / "prepared"),
                               "--split", "val", "--out", str(out), "--precision", precision],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        exported[precision] = {p.name: p.read_text().split() for p in sorted(out.glob("*.txt"))}
    assert exported["fp32"].keys() == exported["bf16"].keys() and exported["fp32"]
    for name, labels in exported["fp32"].items():
        same = sum(a == b for a, b in zip(labels, exported["bf16"][name], strict=True))
        assert same >= 0.95 * len(labels), name
