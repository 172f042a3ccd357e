"""The summary logic of benchmarks/bench_regression.py (medians, ratios, verdicts, output checks)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_regression.py"
spec = importlib.util.spec_from_file_location("bench_regression", SCRIPT)
assert spec is not None and spec.loader is not None
br = importlib.util.module_from_spec(spec)
spec.loader.exec_module(br)


def child(sections: dict[str, tuple[list[float], list[float], float]]) -> dict:
    return {
        "sections": {
            name: {"wall": w, "cpu": c, "peak_rss_mib": rss, "saved_mib": None}
            for name, (w, c, rss) in sections.items()
        }
    }


def test_summarize_takes_median_of_round_medians_and_head_over_base() -> None:
    rounds = {
        "base": [
            child({"conv": ([1.0, 3.0, 2.0], [1.0, 1.0, 1.0], 100.0)}),  # median 2
            child({"conv": ([4.0, 4.0, 4.0], [1.2, 1.2, 1.2], 120.0)}),  # median 4
            child({"conv": ([3.0], [1.1], 110.0)}),  # median 3
        ],
        "head": [
            child({"conv": ([6.0], [2.0], 90.0), "only_head": ([1.0], [1.0], 1.0)}),
            child({"conv": ([6.0], [2.2], 95.0), "only_head": ([1.0], [1.0], 1.0)}),
            child({"conv": ([6.0], [2.1], 99.0), "only_head": ([1.0], [1.0], 1.0)}),
        ],
    }
    (row,) = br.summarize(rounds)  # sections missing from one tree are left out
    assert row["section"] == "conv"
    assert row["base"]["wall_s"] == 3.0 and row["base"]["round_wall_s"] == [2.0, 4.0, 3.0]
    assert row["base"]["spread"] == pytest.approx(2.0 / 3.0)
    assert row["head"]["wall_s"] == 6.0 and row["head"]["spread"] == 0.0
    assert row["ratio"] == pytest.approx(2.0)
    assert row["cpu_ratio"] == pytest.approx(2.1 / 1.1)
    assert row["cpu_min_ratio"] == pytest.approx(2.0 / 1.0)
    assert row["base"]["peak_rss_mib"] == 120.0 and row["head"]["peak_rss_mib"] == 99.0
    assert row["verdict"] == "slower"


def test_verdict_margin_is_the_larger_of_floor_and_noise_and_needs_the_min_ratio() -> None:
    assert br.verdict(1.05, 0.0, 1.05) == "same"
    assert br.verdict(1.15, 0.0, 1.15) == "slower"
    assert br.verdict(1.15, 0.2, 1.15) == "same"  # inside the noise
    assert br.verdict(1.15, 0.0, 1.02) == "same"  # the fastest runs agree
    assert br.verdict(0.85, 0.0, 0.85) == "faster"
    assert br.verdict(0.85, 0.0, 0.95) == "same"
    assert br.verdict(1 / 1.09, 0.0, 0.9) == "same"


def test_max_rel_diff_scales_by_the_base_and_flags_shape_mismatch() -> None:
    b = np.array([[2.0, -4.0], [1.0, 0.0]])
    a = b + np.array([[0.0, 0.4], [0.0, 0.0]])
    assert br.max_rel_diff(a, b) == pytest.approx(0.1)
    assert br.max_rel_diff(np.zeros(3), np.zeros(3)) == 0.0
    assert math.isinf(br.max_rel_diff(np.zeros(3), np.zeros(4)))


def test_compare_outputs_matches_rows_by_coordinates() -> None:
    coords = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], np.int32)
    feats = np.array([[1.0], [2.0], [3.0]])
    perm = np.array([2, 0, 1])
    base = {"y.F": feats, "y.C": coords, "loss": np.array([1.0])}
    head = {"y.F": feats[perm], "y.C": coords[perm], "loss": np.array([1.5])}
    out = br.compare_outputs(head, base)
    assert out == {"loss": 0.5, "y.F": 0.0}
    head_moved = dict(head, **{"y.C": coords[perm] + 1})  # another coordinate set
    assert math.isinf(br.compare_outputs(head_moved, base)["y.F"])
    assert math.isinf(br.compare_outputs({"loss": np.array([1.0])}, base)["y.F"])
