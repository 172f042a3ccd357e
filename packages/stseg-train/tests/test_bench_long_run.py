"""The summary of benchmarks/bench_long_run.py: which steps it compares and how."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_long_run.py"
spec = importlib.util.spec_from_file_location("bench_long_run", SCRIPT)
assert spec is not None and spec.loader is not None
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_summarize_compares_the_last_six_steps_with_a_fresh_process() -> None:
    long_steps = [9.0, 1.0, 1.1, 0.9, 1.0] + [1.0] * 10 + [1.5, 1.4, 1.6, 1.5, 1.5, 1.5]
    short_steps = [7.0, 1.0, 0.9, 1.1, 1.0, 1.0]  # step 1 (warm-up) is left out
    out = bench.summarize(long_steps, short_steps)
    assert out["long_steps_1_5_median_s"] == 1.0
    assert out["long_last_6_median_s"] == 1.5
    assert out["fresh_steps_2_6_median_s"] == 1.0
    assert out["last_over_fresh"] == pytest.approx(1.5)
    assert out["last_over_first"] == pytest.approx(1.5)
