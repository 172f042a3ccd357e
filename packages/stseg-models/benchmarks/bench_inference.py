"""Per-scene inference time and peak memory of Res16UNet34C on a ScanNet-sized synthetic room.

    python bench_inference.py --json OUT.json [--quick] [--threads N] [--device cpu|cuda]

Each backend (native, and MinkowskiEngine when it imports) runs in its own fresh process so that
peak resident memory (ru_maxrss) belongs to that backend alone; the table reports the time of
`Segmenter.predict` (voxelize, network forward, map back to points), the voxelization share, and
peak memory above the process's footprint before the prediction. Ratios are native / MinkowskiEngine
from the same run. Weights are random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def synthetic_room(
    quick: bool, points: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Points on the floor, four walls and box furniture of a room, with colours; float64 / float32.

    Full size: a 5 x 4.2 m room with 2.4 m walls (about 220k voxels at 2 cm, a large ScanNet
    scene) sampled with 900k points. Quick: 2.5 x 2 m, 90k points. `points` overrides the count.
    """
    rng = np.random.default_rng(seed)
    (sx, sy, h), n = ((2.5, 2.0, 1.5), 90_000) if quick else ((5.0, 4.2, 2.4), 900_000)
    n = points or n
    planes = [  # (origin, u, v) rectangles
        ((0, 0, 0), (sx, 0, 0), (0, sy, 0)),
        ((0, 0, 0), (sx, 0, 0), (0, 0, h)),
        ((0, sy, 0), (sx, 0, 0), (0, 0, h)),
        ((0, 0, 0), (0, sy, 0), (0, 0, h)),
        ((sx, 0, 0), (0, sy, 0), (0, 0, h)),
    ]
    for _ in range(4 if quick else 10):  # box tops and sides
        x, y = rng.uniform(0.3, sx - 1.2), rng.uniform(0.3, sy - 1.0)
        w, d, t = rng.uniform(0.4, 1.0), rng.uniform(0.4, 0.8), rng.uniform(0.4, 0.9)
        planes += [((x, y, t), (w, 0, 0), (0, d, 0)), ((x, y, 0), (w, 0, 0), (0, 0, t))]
        planes += [((x, y, 0), (0, d, 0), (0, 0, t))]
    origin, u, v = (np.array([p[i] for p in planes], dtype=np.float64) for i in range(3))
    area = np.linalg.norm(np.cross(u, v), axis=1)
    which = rng.choice(len(planes), size=n, p=area / area.sum())
    a, b = rng.uniform(size=(2, n, 1))
    xyz = origin[which] + a * u[which] + b * v[which] + rng.normal(0, 0.003, size=(n, 3))
    base = rng.uniform(0.2, 0.9, size=(len(planes), 3))
    rgb = np.clip(base[which] + rng.normal(0, 0.05, size=(n, 3)), 0, 1).astype(np.float32)
    return xyz, rgb


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(backend: str, quick: bool, threads: int, device: str, points: int | None) -> dict:
    """One measurement in this (fresh) process; returns a JSON-able dict."""
    import torch

    from stseg_data.voxelize import voxelize
    from stseg_models.checkpoint import dataset_preset
    from stseg_models.inference import Segmenter
    from stseg_models.zoo import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    xyz, rgb = synthetic_room(quick, points)
    spec = dataset_preset("scannet")
    model = build_model("Res16UNet34C", 3, 20, backend=backend).eval().to(device)
    seg = Segmenter(model, spec, torch.device(device))
    t0 = time.perf_counter()
    vox = voxelize(xyz - xyz.mean(0), spec.voxel_size, features=rgb)
    voxelize_s = time.perf_counter() - t0
    base_mb = _rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0, cpu0 = time.perf_counter(), _cpu_s()
    labels, _ = seg.predict(xyz, rgb)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    predict_s, cpu_s = time.perf_counter() - t0, _cpu_s() - cpu0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "backend": backend,
        "device": device,
        "points": len(xyz),
        "voxels": len(vox),
        "predict_s": round(predict_s, 3),
        "predict_cpu_s": round(cpu_s, 3),  # user + system: robust to other load on the machine
        "voxelize_s": round(voxelize_s, 3),
        "peak_rss_mb": round(peak_mb, 1),
        "peak_above_start_mb": round(peak_mb - base_mb, 1),
        "labels_ok": bool(len(labels) == len(xyz)),
    }
    if device.startswith("cuda"):
        result["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def _spawn(backend: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", backend, "--threads", str(args.threads)]
    cmd += ["--device", args.device] + (["--quick"] if args.quick else [])
    cmd += ["--points", str(args.points)] if args.points else []
    env = {**os.environ, "STSEG_SPARSE_BACKEND": backend}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"backend": backend, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--quick", action="store_true", help="small room (CI smoke run)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--points", type=int, help="points in the room (default 900k; quick 90k)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.quick, args.threads, args.device, args.points)))
        return

    from stseg_models.sparse import backends

    available = backends()
    runs = [_spawn("native", args)]
    if available["minkowski"].available:
        runs.append(_spawn("minkowski", args))
    print(f"Res16UNet34C inference, {'quick' if args.quick else 'ScanNet-sized'} room, "
          f"{args.threads} threads, {args.device}")  # fmt: skip
    print(f"{'backend':<10} {'points':>8} {'voxels':>8} {'predict s':>10} {'cpu s':>8} "
          f"{'voxelize s':>11} {'peak MB':>9} {'+MB':>8}")  # fmt: skip
    for r in runs:
        if "error" in r:
            print(f"{r['backend']:<10} failed: {r['error']}")
            continue
        print(f"{r['backend']:<10} {r['points']:>8} {r['voxels']:>8} {r['predict_s']:>10.2f} "
              f"{r['predict_cpu_s']:>8.2f} {r['voxelize_s']:>11.2f} {r['peak_rss_mb']:>9.0f} {r['peak_above_start_mb']:>8.0f}")  # fmt: skip
    ok = [r for r in runs if "error" not in r]
    ratios = {}
    if len(ok) == 2:
        native, me = ok
        ratios = {
            "time_native_over_minkowski": round(native["predict_s"] / me["predict_s"], 3),
            "cpu_native_over_minkowski": round(native["predict_cpu_s"] / me["predict_cpu_s"], 3),
            "peak_native_over_minkowski": round(
                native["peak_above_start_mb"] / max(me["peak_above_start_mb"], 1e-6), 3
            ),
        }
        print(f"native / MinkowskiEngine: time x{ratios['time_native_over_minkowski']}, "
              f"peak memory x{ratios['peak_native_over_minkowski']}")  # fmt: skip
    else:
        print(f"MinkowskiEngine: not measured ({available['minkowski'].reason})")
    if args.json:
        payload = {
            "benchmark": "inference_res16unet34c",
            "quick": args.quick,
            "threads": args.threads,
            "device": args.device,
            "machine": platform.machine(),
            "python": platform.python_version(),
            "runs": runs,
            "ratios": ratios,
            "minkowski": available["minkowski"].reason or available["minkowski"].version,
        }
        with open(args.json, "w") as handle:
            json.dump(payload, handle, indent=2)


if __name__ == "__main__":
    main()
