"""`benchmarks/gpu_check.py --device cpu --quick`: the README's dry run of `nox -s gpu`, end to end.

No GPU is lent to CI, so this is what shows that the one-call GPU script runs at all before a
device's minutes are spent on it: every part (engine benchmark in fp32, bf16 and fp16 autocast,
the training steps) must finish without a recorded failure and write its figures to the JSON, and
`--device cuda` without CUDA must stop at once with a one-line reason.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
PARTS = ("engine_fp32", "engine_bf16", "engine_fp16", "train_step_batch1_fp32",
         "train_step_batch1_bf16")  # fmt: skip


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cpu_dry_run_writes_every_part_without_failure(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "gpu_check.json"
    proc = _run("--json", str(out), "--device", "cpu", "--quick", "--skip-tests",
                "--scale", "0.08", "--batch", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failures"] == []
    assert report["quick"] is True and report["scale"] == 0.08
    assert report["environment"]["device"] == "cpu"
    assert set(PARTS) <= set(report) and set(PARTS) == set(report["part_seconds"])
    for name in ("fp32", "bf16", "fp16"):
        engine = report[f"engine_{name}"]
        assert engine["voxels"] > 500 and all(n > 0 for n in engine["pairs"].values())
        timed = {(row["section"], row["mode"]) for row in engine["results"]}
        assert ("res16unet34c", "inference") in timed and ("res16unet34c", "train_step") in timed
        assert all(row["median_s"] > 0 for row in engine["results"])
        floors = [row for row in engine["comparison"] if row["section"] == "res16unet34c"]
        assert floors and all(row["gemm_floor_s"] and row["gemm_floor_s"] > 0 for row in floors)
    for name in ("fp32", "bf16"):
        step = report[f"train_step_batch1_{name}"]
        assert step["dtype"] == name and step["batch"] == 1 and step["finite"]
        assert step["step_median_s"] > 0 and len(step["losses"]) == 2  # warm-up + one repeat
        # Cross entropy of an untrained 20-class net on random labels starts near ln 20.
        assert all(math.isfinite(v) and 1.0 < v < 10.0 for v in step["losses"])
    assert "failures: none" in proc.stdout


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA"
)
def test_cuda_without_a_gpu_stops_at_once_with_the_reason(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    proc = _run("--json", str(out), "--skip-tests", timeout=120)
    assert proc.returncode == 1
    assert "no CUDA device visible to torch" in proc.stderr
    assert not out.exists()


def test_scale_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    proc = _run("--json", str(tmp_path / "x.json"), "--device", "cpu", "--scale", "0", timeout=120)
    assert proc.returncode == 2 and "--scale 0.0: expected a fraction in (0, 4]" in proc.stderr
