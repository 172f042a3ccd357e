"""Training memory over time: the main job's model trained in this process, RSS every N iterations.

    python bench_memory.py [--json OUT.json] [--quick] [--iterations N] [--threads T]
        [--data PREPARED] [--no-heap-trim] [--heap-retain]

Trains the `synthetic` recipe (Res16UNet14F, 10 cm voxels, batch 2, Adam, one loader worker,
checkpoints every 240 iterations) on the synthetic rooms for `--iterations` (default 1,000) and
prints, at every tenth of the run, this process's RSS (`VmRSS` of /proc/self/status), its peak
(`VmHWM`), the C heap's memory in use and free-but-resident (glibc `mallinfo2`), and the loader
worker's RSS. Growth is measured after warm-up: from iteration `--warmup` (default 100) to the
last; the target is under 10 %. Periodic validation is off (it would add its own allocations
at fixed points: pass `--val-freq`). `--no-heap-trim` turns off the trainer's per-step
`malloc_trim` (`runtime.heap_trim_every=0`) to show the growth it prevents (see `stseg_train.heap`).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

TARGET_GROWTH = 0.10


def proc_status(pid: str = "self") -> dict[str, float]:
    """VmRSS and VmHWM of process `pid` in MiB (empty if the process is gone)."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def child_rss() -> float:
    """Summed RSS (MiB) of this process's children (the DataLoader worker)."""
    pid = os.getpid()
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return 0.0
    return sum(proc_status(k).get("VmRSS", 0.0) for k in kids)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")
    ]  # fmt: skip


def heap_stats() -> dict[str, float]:
    """glibc heap: MiB in use, free but kept, and in mmapped blocks (empty off glibc)."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return {}
    mallinfo2.restype = _Mallinfo2
    info = mallinfo2()
    mib = 2**20
    return {"heap_in_use_mb": info.uordblks / mib, "heap_free_mb": info.fordblks / mib,
            "mmapped_mb": info.hblkhd / mib}  # fmt: skip


def prepare_data(root: Path, scenes: int) -> Path:
    from stseg_train.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(root, scenes, seed=42)


def train_and_sample(args: argparse.Namespace, data: Path, out: Path) -> list[dict[str, Any]]:
    from stseg_train.components import dataset_components
    from stseg_train.config import resolve_config
    from stseg_train.run import prepare_run_dir, worker

    sets = ["progress=false", f"threads={args.threads}"]
    sets.append(f"val_freq={args.val_freq or args.iterations + 1}")
    if args.no_heap_trim:
        sets.append("runtime.heap_trim_every=0")
    if args.heap_retain:
        sets.append("runtime.heap_mode=retain")
    config = resolve_config("synthetic", options={"data": str(data), "out": str(out),
                            "max_iter": args.iterations}, sets=sets)  # fmt: skip
    every = max(1, args.iterations // 10)
    rows: list[dict[str, Any]] = []
    tic = time.perf_counter()

    def components(cfg: Any, ctx: Any) -> Any:
        parts = dataset_components(cfg, ctx)
        if not args.val_freq:
            parts.evaluate = None  # no validation at all, not even after the last step
        return parts

    def on_step(iteration: int, _loss: float, _names: list[str]) -> None:
        if iteration % every and iteration != args.iterations:
            return
        status = proc_status()
        row = {"iteration": iteration, "seconds": time.perf_counter() - tic,
               "rss_mb": status["VmRSS"], "peak_rss_mb": status["VmHWM"],
               **heap_stats(), "worker_rss_mb": child_rss()}  # fmt: skip
        rows.append(row)
        print(f"{iteration:>6}{row['seconds']:>8.0f}{row['rss_mb']:>9.0f}{row['peak_rss_mb']:>9.0f}"
              f"{row.get('heap_in_use_mb', 0):>9.0f}{row.get('heap_free_mb', 0):>9.0f}"
              f"{row['worker_rss_mb']:>9.0f}", flush=True)  # fmt: skip

    print(f"{'iter':>6}{'s':>8}{'RSS':>9}{'peak':>9}{'in use':>9}{'free':>9}{'worker':>9}  (MiB)")
    prepare_run_dir(config, resume=False)
    worker(config, components, False, on_step=on_step)
    return rows


def growth(rows: list[dict[str, Any]], warmup: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(first row at or after `warmup`, last row)."""
    start = next((r for r in rows if r["iteration"] >= warmup), rows[0])
    return start, rows[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="write results here")
    parser.add_argument("--quick", action="store_true", help="200 iterations on 20 rooms")
    parser.add_argument("--iterations", type=int, default=None, help="default 1000 (quick 200)")
    parser.add_argument("--warmup", type=int, default=100, help="growth is measured from here")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default, as the main job)")  # fmt: skip
    parser.add_argument("--val-freq", type=int, default=0, help="validate every N (0: never)")
    parser.add_argument("--data", default=None, help="reuse (or create) the synthetic data here")
    parser.add_argument("--no-heap-trim", action="store_true",
                        help="turn off the trainer's per-step malloc_trim")  # fmt: skip
    parser.add_argument("--heap-retain", action="store_true",
                        help="the trainer's runtime.heap_mode=retain (freed memory kept for reuse)")  # fmt: skip
    args = parser.parse_args()
    args.iterations = args.iterations or (200 if args.quick else 1000)
    scenes = 20 if args.quick else 100
    with tempfile.TemporaryDirectory() as tmp:
        data_root = Path(args.data) if args.data else Path(tmp) / "data"
        data = prepare_data(data_root, scenes)
        rows = train_and_sample(args, data, Path(tmp) / "run")
    start, end = growth(rows, args.warmup)
    rel = end["rss_mb"] / start["rss_mb"] - 1
    verdict = "ok" if rel < TARGET_GROWTH else "OVER TARGET"
    print(f"RSS {start['rss_mb']:.0f} MiB at iteration {start['iteration']} -> {end['rss_mb']:.0f} "
          f"MiB at {end['iteration']}: {100 * rel:+.1f} % (target < {100 * TARGET_GROWTH:.0f} %: "
          f"{verdict}); peak {end['peak_rss_mb']:.0f} MiB")  # fmt: skip
    if args.json:
        result = {
            "benchmark": "training RSS, synthetic recipe (Res16UNet14F, 10 cm), CPU, in-process",
            "quick": args.quick,
            "iterations": args.iterations,
            "threads": args.threads or torch.get_num_threads(),
            "heap_trim": not args.no_heap_trim and not args.heap_retain,
            "heap_mode": "retain" if args.heap_retain else "trim",
            "warmup_iteration": start["iteration"],
            "rss_growth_after_warmup": rel,
            "target_growth": TARGET_GROWTH,
            "torch": str(torch.__version__),
            "rows": rows,
        }
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
