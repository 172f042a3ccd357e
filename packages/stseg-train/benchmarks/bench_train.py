"""Training throughput on the synthetic room (CPU): iterations/s, samples/s and peak memory, for one
process at 1 and 2 threads, and for 2 gloo processes (1 thread each) against 1 process.

    python bench_train.py --json OUT.json [--quick]

Each configuration is a real `stseg-train` run (`--model`, default the main job's Res16UNet14F;
synthetic ScanNet scenes through the
real preprocessing); step times come from the run's final checkpoint, the first steps (kernel-map
and cache warm-up) left out. Ratios are against the 1-process, 1-thread run of the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch


def prepare(root: Path, scenes: int) -> Path:
    """`scenes` synthetic ScanNet rooms under root/raw, preprocessed into root/prepared."""
    from stseg_data.preprocess import preprocess
    from stseg_data.synth import write_synthetic

    write_synthetic("scannet", root / "raw", scenes, seed=0)
    preprocess("scannet", root / "raw", root / "prepared")
    return root / "prepared"


def _run(data: Path, out: Path, *, iters: int, voxel: float, threads: int, procs: int,
         batch: int, model: str) -> dict:  # fmt: skip
    from stseg_train.components import dataset_components
    from stseg_train.config import resolve_config
    from stseg_train.run import train

    config = resolve_config(
        "scannet",
        options={
            "data": str(data),
            "out": str(out),
            "model": model,
            "voxel_size": voxel,
            "batch_size": batch,
            "max_iter": iters,
        },
        sets=[
            "val_freq=100000",
            f"save_freq={iters}",
            "progress=false",
            "tensorboard=false",
            f"threads={threads}",
            "augment=true",
        ],
    )
    tic = time.perf_counter()
    train(config, dataset_components, procs=procs)
    wall = time.perf_counter() - tic
    final = torch.load(out / "checkpoints" / "final.pth", weights_only=True)
    steps = final["trainer"]["recent_step_seconds"][2:]
    step = statistics.median(steps)
    world = max(procs, 1)
    return {
        "procs": world,
        "threads": threads,
        "batch_per_proc": batch,
        "voxel_size": voxel,
        "iterations": iters,
        "seconds_per_iteration": step,
        "iterations_per_second": 1.0 / step,
        "samples_per_second": batch * world / step,
        "wall_seconds": wall,
    }


def _load() -> dict:
    """The machine's state beside the figures: on a shared machine absolute times depend on it."""
    one, five, _ = os.getloadavg()
    return {"loadavg_1min": round(one, 2), "loadavg_5min": round(five, 2), "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="write results here")
    parser.add_argument("--quick", action="store_true", help="fewer, coarser steps (CI smoke)")
    parser.add_argument("--model", default="Res16UNet14F", help="registry network to train")
    args = parser.parse_args()
    iters, voxel = (6, 0.2) if args.quick else (12, 0.1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = prepare(root / "data", 4)
        run = partial(_run, data, iters=iters, voxel=voxel, model=args.model)
        rows = [
            run(root / "t1", threads=1, procs=0, batch=2),
            run(root / "t2", threads=2, procs=0, batch=2),
            run(root / "p2", threads=1, procs=2, batch=1),
        ]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reference = rows[0]["samples_per_second"]
    print(f"{'config':<22}{'s/it':>8}{'it/s':>8}{'samples/s':>11}{'vs ref':>8}")
    for row in rows:
        row["ratio_samples_per_second_vs_1proc_1thread"] = row["samples_per_second"] / reference
        name = f"{row['procs']} proc x {row['threads']} thr, b{row['batch_per_proc']}"
        print(f"{name:<22}{row['seconds_per_iteration']:>8.2f}{row['iterations_per_second']:>8.3f}"
              f"{row['samples_per_second']:>11.3f}{row['ratio_samples_per_second_vs_1proc_1thread']:>8.2f}")  # fmt: skip
    print(f"peak RSS of the single-process runs: {peak_mb:.0f} MiB")
    result = {
        "benchmark": f"stseg-train synthetic room, {args.model}, CPU",
        "quick": args.quick,
        "peak_rss_mb_single_process": peak_mb,
        "torch": str(torch.__version__),
        "rows": rows,
    }
    result["load"] = _load()
    # sorted keys, fixed indent: the layout never changes between runs (the README test reads it)
    Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.exit(main())
