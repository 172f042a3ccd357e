"""bf16 against fp32 inference of a trained checkpoint: label agreement and time, per scene.

    python precision_agreement.py --weights CKPT --json OUT.json SCENE.ply [SCENE.ply ...]
        [--precision bf16|fp16] [--threads N] [--repeats N]

For each scene (a PLY that `stseg-models predict` reads), the checkpoint's `Segmenter` predicts
once in fp32 and once under autocast, alternating, `--repeats` times each (the first of each is a
warm-up); the JSON holds the fraction of points with the same label, the largest probability
difference, the voxels and the median seconds of both. A random network is no test of this: its
logits are near ties and any rounding flips them, so the weights must be trained.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stseg_data.atomic import atomic_write
from stseg_data.ply import read_ply
from stseg_models.inference import Segmenter


def agreement(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """Fraction of equal labels (pure)."""
    return float((np.asarray(labels_a) == np.asarray(labels_b)).mean()) if len(labels_a) else 1.0


def compare_scene(
    reference: Segmenter, half: Segmenter, xyz: np.ndarray, rgb: np.ndarray | None, repeats: int
) -> dict[str, Any]:
    times: dict[str, list[float]] = {"fp32": [], half.precision: []}
    results: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for _ in range(repeats + 1):
        for seg in (reference, half):
            start = time.perf_counter()
            results[seg.precision] = seg.predict(xyz, rgb)
            times[seg.precision].append(time.perf_counter() - start)
    (labels32, probs32), (labels16, probs16) = results["fp32"], results[half.precision]
    return {
        "points": len(xyz),
        "label_agreement": round(agreement(labels32, labels16), 6),
        "max_probability_difference": round(float(np.abs(probs32 - probs16).max()), 4),
        "seconds_fp32": round(statistics.median(times["fp32"][1:]), 3),
        f"seconds_{half.precision}": round(statistics.median(times[half.precision][1:]), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenes", nargs="+", type=Path, help="PLY scenes")
    parser.add_argument("--weights", required=True, type=Path, help="trained checkpoint")
    parser.add_argument("--json", required=True, type=Path, help="output JSON path")
    parser.add_argument("--precision", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed runs per precision (after a warm-up)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reference = Segmenter.from_checkpoint(args.weights)
    half = Segmenter.from_checkpoint(args.weights, precision=args.precision)
    scenes = {}
    for path in args.scenes:
        cloud = read_ply(path)
        scenes[path.name] = row = compare_scene(reference, half, cloud.xyz, cloud.rgb, args.repeats)
        print(path.name, json.dumps(row), flush=True)
    points = sum(r["points"] for r in scenes.values())
    report = {
        "benchmark": f"{args.precision} vs fp32 inference of one trained checkpoint (Segmenter.predict)",
        "model": reference.model.__class__.__name__,
        "voxel_size": reference.spec.voxel_size,
        "precision": args.precision,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "load_average_at_end": os.getloadavg(),
        "points": points,
        "label_agreement": round(
            sum(r["label_agreement"] * r["points"] for r in scenes.values()) / points, 6
        ),
        "seconds_fp32": round(sum(r["seconds_fp32"] for r in scenes.values()), 3),
        f"seconds_{args.precision}": round(
            sum(r[f"seconds_{args.precision}"] for r in scenes.values()), 3
        ),
        "scenes": scenes,
    }
    with atomic_write(args.json, "w") as handle:
        json.dump(report, handle, indent=2)
    print(
        f"label agreement {report['label_agreement']:.4%} over {points} points; wrote {args.json}"
    )


if __name__ == "__main__":
    main()
