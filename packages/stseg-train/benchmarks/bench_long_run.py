"""Step time over a long training run against a fresh process's: does a run slow down?

    python bench_long_run.py --json OUT.json [--steps 205] [--precision fp32|bf16]
        [--model Res16UNet34C] [--voxel-size 0.02] [--threads 2] [--scenes 8]

Two real `stseg-train` runs (the trainer, ScanNet-format synthetic rooms through the real
preprocessing and augmentation, batch 1), each in a fresh interpreter: a long one of `--steps`
steps and a short one of 6 with the same seed (so its steps see the long run's first samples).
Step times come from each run's final checkpoint (`recent_step_seconds`). The JSON holds the medians
of steps 1-5 and of the last 6 steps of the long run, of steps 2-6 of the short one, their ratios,
and every step time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import prepare


def train_run(data: str, out: str, steps: int, model: str, voxel: float, threads: int,
              precision: str) -> None:  # fmt: skip
    """One training run in this process (the child's work)."""
    from stseg_train.components import dataset_components
    from stseg_train.config import resolve_config
    from stseg_train.run import train

    config = resolve_config(
        "scannet",
        options={"data": data, "out": out, "model": model, "voxel_size": voxel, "batch_size": 1,
                 "max_iter": steps, "precision": precision},
        sets=["val_freq=1000000", f"save_freq={steps}", "progress=false", "tensorboard=false",
              f"threads={threads}", "augment=true", "log_freq=1000000"],
    )  # fmt: skip
    train(config, dataset_components)


def step_seconds(run: Path) -> list[float]:
    final = torch.load(run / "checkpoints" / "final.pth", weights_only=True)
    return [float(s) for s in final["trainer"]["recent_step_seconds"]]


def summarize(long_steps: list[float], short_steps: list[float]) -> dict[str, Any]:
    """Medians and ratios of the two runs' step times (pure)."""
    first = statistics.median(long_steps[:5])
    last = statistics.median(long_steps[-6:])
    fresh = statistics.median(short_steps[1:6])
    return {
        "long_steps_1_5_median_s": round(first, 3),
        "long_last_6_median_s": round(last, 3),
        "fresh_steps_2_6_median_s": round(fresh, 3),
        "last_over_fresh": round(last / fresh, 3),
        "last_over_first": round(last / first, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="write results here")
    parser.add_argument("--steps", type=int, default=205)
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--model", default="Res16UNet34C")
    parser.add_argument("--voxel-size", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--child", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        train_run(args.child[0], args.child[1], args.steps, args.model, args.voxel_size,
                  args.threads, args.precision)  # fmt: skip
        return
    if args.steps < 12:
        parser.error("--steps must be at least 12")
    common = ["--model", args.model, "--voxel-size", str(args.voxel_size), "--threads",
              str(args.threads), "--precision", args.precision]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = prepare(root / "data", args.scenes)
        walls = {}
        for name, steps in (("short", 6), ("long", args.steps)):
            tic = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--json", args.json, "--steps", str(steps),
                            *common, "--child", str(data), str(root / name)], check=True)  # fmt: skip
            walls[name] = round(time.perf_counter() - tic, 1)
        long_steps, short_steps = step_seconds(root / "long"), step_seconds(root / "short")
    one, five, _ = os.getloadavg()
    result = {
        "benchmark": "stseg-train step time, long run vs fresh process (synthetic ScanNet rooms)",
        "model": args.model,
        "voxel_size": args.voxel_size,
        "precision": args.precision,
        "threads": args.threads,
        "steps": args.steps,
        "torch": torch.__version__,
        **summarize(long_steps, short_steps),
        "wall_seconds": walls,
        "long_step_seconds": [round(s, 3) for s in long_steps],
        "short_step_seconds": [round(s, 3) for s in short_steps],
        "load": {"loadavg_1min": round(one, 2), "loadavg_5min": round(five, 2)},
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("step_seconds")}))


if __name__ == "__main__":
    main()
