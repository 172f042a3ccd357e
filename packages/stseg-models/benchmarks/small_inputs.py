"""Small-input rows of `bench_sparse.py`: per-iteration cost when Python overhead, not arithmetic, rules.

One iteration is what a per-frame or tiny-batch user pays: a new `SparseTensor` from coordinates
and features, a convolution forward (a new coordinate manager, so the kernel map is built) and
``out.F.sum().backward()``. Workloads:

* ``me_test_16``: MinkowskiEngine 0.5.4's ``tests/python/convolution.py::TestConvolution.test``
  loop as written there: 16 points in 2D (two batches of its 8-point pattern), float64, 2 -> 3
  channels, kernel 3, stride 2, bias;
* ``points_16`` / ``points_1k`` / ``points_10k``: random 3D voxels (a cube at density 1/8),
  float32, 16 -> 16 channels, 3x3x3 kernel, stride 1.

Engines run interleaved (native, MinkowskiEngine, native, ...), each round timing a batch of
iterations sized to about `BATCH_SECONDS`, so load changes on a shared machine hit both alike.
Reported: the median per-iteration time per engine and the median of the per-round ratios, in
wall-clock time and in process CPU time (``*_cpu_ms``): on a loaded machine the wall-clock time
also counts the moments another process held the core, the CPU time does not.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import torch

BATCH_SECONDS = 0.05
SIZES = {"points_16": 16, "points_1k": 1000, "points_10k": 10000}


def me_test_coordinates() -> torch.Tensor:
    """The 16 coordinates of MinkowskiEngine's `data_loader()` (2 batches, 8 points each)."""
    pattern = ["   X   ", "  X X  ", " XXXXX "]
    points = [(i, j) for i, row in enumerate(pattern) for j, c in enumerate(row) if c == "X"]
    return torch.tensor([[b, i, j] for b in range(2) for i, j in points], dtype=torch.int32)


def random_voxels(n: int, seed: int = 0) -> torch.Tensor:
    """n distinct 3D voxels [n, 4] (batch 0) drawn from a cube of 8n cells."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil((8 * n) ** (1 / 3)))
    cells = rng.choice(side**3, size=n, replace=False)
    xyz = np.stack(np.unravel_index(cells, (side, side, side)), axis=1)
    return torch.from_numpy(np.concatenate([np.zeros((n, 1), np.int64), xyz], axis=1)).int()


def make_step(me: ModuleType, workload: str) -> Callable[[], None]:
    """One iteration of `workload` on the engine module `me` (fresh tensor, conv, backward)."""
    if workload == "me_test_16":
        coords = me_test_coordinates()
        feats = torch.arange(len(coords) * 2).view(-1, 2).double().requires_grad_()
        conv = me.MinkowskiConvolution(2, 3, kernel_size=3, stride=2, bias=True, dimension=2)
        conv = conv.double()
    else:
        coords = random_voxels(SIZES[workload])
        feats = torch.rand(len(coords), 16, generator=torch.Generator().manual_seed(0))
        feats.requires_grad_()
        conv = me.MinkowskiConvolution(16, 16, kernel_size=3, stride=1, dimension=3)

    def step() -> None:
        x = me.SparseTensor(feats, coordinates=coords)
        conv(x).F.sum().backward()

    return step


def _batch_size(step: Callable[[], None]) -> int:
    """Iterations per timed batch: about BATCH_SECONDS of work (at least one).

    Sized from the fastest of 5 timed calls, so one call slowed by another process on a shared
    machine does not shrink the batches to single iterations.
    """
    step()  # warm-up: first calls allocate and resolve dispatch
    fastest = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        step()
        fastest = min(fastest, time.perf_counter() - start)
    return max(1, int(BATCH_SECONDS / max(fastest, 1e-6)))


def bench_small(engines: dict[str, ModuleType], rounds: int) -> list[dict[str, Any]]:
    """One row per workload: median ms per iteration per engine and the native / ME ratio."""
    rows = []
    for workload in ["me_test_16", *SIZES]:
        steps = {name: make_step(me, workload) for name, me in engines.items()}
        sizes = {name: _batch_size(step) for name, step in steps.items()}
        times: dict[str, list[float]] = {name: [] for name in steps}
        cpu: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(rounds):
            for name, step in steps.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(sizes[name]):
                    step()
                times[name].append((time.perf_counter() - start) / sizes[name] * 1e3)
                cpu[name].append((time.process_time() - start_cpu) / sizes[name] * 1e3)
        row: dict[str, Any] = {"workload": workload, "rounds": rounds}
        for name, series in times.items():
            row[f"{name}_ms"] = round(statistics.median(series), 4)
            row[f"{name}_cpu_ms"] = round(statistics.median(cpu[name]), 4)
            row[f"{name}_iterations_per_round"] = sizes[name]
        if "minkowski" in times:
            ratios = [a / b for a, b in zip(times["native"], times["minkowski"], strict=True)]
            row["native_over_minkowski"] = round(statistics.median(ratios), 2)
            ratios = [a / b for a, b in zip(cpu["native"], cpu["minkowski"], strict=True) if b > 0]
            row["native_over_minkowski_cpu"] = round(statistics.median(ratios), 2)
        rows.append(row)
    return rows


def print_small(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        me = row.get("minkowski_ms")
        tail = ""
        if me:
            tail = (
                f"  minkowski {me:.3f} ms  ratio {row['native_over_minkowski']:.2f}x"
                f" (CPU time {row['native_over_minkowski_cpu']:.2f}x)"
            )
        print(f"small  {row['workload']:<11} native {row['native_ms']:.3f} ms{tail}")
