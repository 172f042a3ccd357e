"""Data benchmarks: voxelization against a plain numpy.unique reference, synthetic generation and
preprocessing throughput. Run: python bench_data.py --json OUT.json [--quick]

Every ratio compares timings taken in this process on the same input.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from stseg_data.preprocess import preprocess
from stseg_data.synth import write_synthetic
from stseg_data.voxelize import voxelize


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def reference_voxelize(xyz, voxel_size, features, labels):
    """The straightforward numpy version: unique rows of the floored coordinates."""
    grid = np.floor(xyz / voxel_size).astype(np.int64)
    coords, index, inverse = np.unique(grid, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    lo = np.full(len(coords), np.iinfo(np.int64).max)
    hi = np.full(len(coords), np.iinfo(np.int64).min)
    np.minimum.at(lo, inverse, labels)
    np.maximum.at(hi, inverse, labels)
    return coords, features[index], np.where(lo == hi, lo, 255), inverse


def scene_like_cloud(n: int, rng: np.random.Generator) -> np.ndarray:
    """Points on the floor, walls and boxes of a 6 x 6 x 3 m room (surface-like duplication)."""
    xyz = rng.random((n, 3)) * [6, 6, 3]
    part = rng.integers(0, 4, n)
    xyz[part == 0, 2] = rng.normal(0, 0.003, (part == 0).sum())
    xyz[part == 1, 0] = rng.normal(0, 0.003, (part == 1).sum())
    xyz[part == 2, 1] = 6 + rng.normal(0, 0.003, (part == 2).sum())
    return xyz


def bench_voxelize(n: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    xyz = scene_like_cloud(n, rng)
    features = rng.random((n, 3)).astype(np.float32)
    labels = rng.integers(0, 20, n)
    ours = voxelize(xyz, 0.02, features=features, labels=labels)
    coords, _, ref_labels, inverse = reference_voxelize(xyz, 0.02, features, labels)
    assert np.array_equal(ours.coords, coords) and np.array_equal(ours.labels, ref_labels)
    assert np.array_equal(ours.inverse, inverse)
    fast = best_of(lambda: voxelize(xyz, 0.02, features=features, labels=labels), repeats)
    slow = best_of(lambda: reference_voxelize(xyz, 0.02, features, labels), max(1, repeats // 2))
    # the bare minimum of the reference (no features, no labels) against ours without them
    fast_bare = best_of(lambda: voxelize(xyz, 0.02), repeats)
    slow_bare = best_of(
        lambda: np.unique(
            np.floor(xyz / 0.02).astype(np.int64), axis=0, return_index=True, return_inverse=True
        ),
        max(1, repeats // 2),
    )
    return {"points": n, "voxels": len(ours), "seconds": fast, "points_per_s": n / fast,
            "reference_seconds": slow, "reference_points_per_s": n / slow, "speedup": slow / fast,
            "bare_seconds": fast_bare, "bare_reference_seconds": slow_bare,
            "bare_speedup": slow_bare / fast_bare}  # fmt: skip


def bench_dataset(kind: str, scenes: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        raw, out = Path(folder) / "raw", Path(folder) / "out"
        start = time.perf_counter()
        names = write_synthetic(kind, raw, scenes, seed=0, frames=4)
        synth_s = time.perf_counter() - start
        start = time.perf_counter()
        preprocess(kind, raw, out, workers=workers)
        prep_s = time.perf_counter() - start
    return {"kind": kind, "scenes": scenes, "files": len(names), "synth_scenes_per_s": scenes / synth_s,
            "preprocess_files_per_s": len(names) / prep_s, "workers": workers}  # fmt: skip


def _load() -> dict:
    """The machine's state beside the figures: on a shared machine absolute times depend on it."""
    one, five, _ = os.getloadavg()
    return {"loadavg_1min": round(one, 2), "loadavg_5min": round(five, 2), "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True, help="write results here")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and scenes")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    results = {"machine": platform.platform(), "numpy": np.__version__,
               "voxelize": [bench_voxelize(n, repeats) for n in ((1_000_000,) if args.quick else (100_000, 1_000_000))],
               "datasets": [bench_dataset(k, 2 if args.quick else 5, 1) for k in ("scannet", "s3dis", "synthia4d")]}  # fmt: skip
    print(f"{'voxelize':<12}{'points':>10}{'voxels':>10}{'Mpts/s':>10}{'ref Mpts/s':>12}{'speedup':>9}"
          f"{'bare speedup':>14}")  # fmt: skip
    for r in results["voxelize"]:
        print(f"{'':<12}{r['points']:>10}{r['voxels']:>10}{r['points_per_s'] / 1e6:>10.2f}"
              f"{r['reference_points_per_s'] / 1e6:>12.2f}{r['speedup']:>8.1f}x{r['bare_speedup']:>13.1f}x")  # fmt: skip
    print(f"{'dataset':<12}{'scenes':>10}{'synth/s':>10}{'prep files/s':>14}")
    for r in results["datasets"]:
        print(
            f"{r['kind']:<12}{r['scenes']:>10}{r['synth_scenes_per_s']:>10.2f}{r['preprocess_files_per_s']:>14.2f}"
        )
    results["load"] = _load()
    results["quick"] = args.quick
    # sorted keys, fixed indent: the layout never changes between runs (the README test reads it)
    Path(args.json).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
