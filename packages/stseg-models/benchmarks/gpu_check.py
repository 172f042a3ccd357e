"""One-call GPU check: CUDA tests, the engine benchmark (fp32, bf16 and fp16 autocast), a training step.

    python gpu_check.py --json OUT.json [--device cuda|cpu] [--quick] [--skip-tests] [--scale S]

Runs, in order, and writes every figure to one JSON file (written again after each part, so a run
stopped by a time limit still leaves what it measured):

1. the `gpu`-marked tests (`tests/test_sparse_cuda.py`, in a subprocess: CUDA == CPU, no host
   synchronisation inside a layer once its maps exist);
2. the engine benchmark of `bench_sparse.py` on the device, native engine only (MinkowskiEngine is
   CPU-only here): per layer inference / training forward / backward beside the GEMM floor of the
   same dtype, and Res16UNet34C inference and training step on the 218k-voxel room; once in fp32 and
   once under `torch.autocast` for bf16 and for fp16;
3. a Res16UNet34C training step (forward, cross entropy, backward, SGD step) at batch 4 on four
   2 cm synthetic rooms (about 870k voxels), fp32 and bf16 autocast, with its peak GPU memory
   (`torch.cuda.max_memory_allocated`, reset before each).

`--device cpu --quick` is a dry run of the same code on a small room (checks the script end to end
without a GPU; `--scale` shrinks the rooms further, as the test of this dry run does). Part failures are recorded in the JSON ("error") and the script exits 1 at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_sparse as bench  # noqa: E402

import stseg_models.sparse as NATIVE  # noqa: E402

REPO = HERE.parents[2]
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def environment(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "device": device,
        "cpu_threads": torch.get_num_threads(),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
        )
    return info


def run_gpu_tests() -> dict[str, Any]:
    """pytest -m gpu on the CUDA test file; the last summary line and the exit status."""
    test_file = REPO / "packages" / "stseg-models" / "tests" / "test_sparse_cuda.py"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        str(test_file),
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.strip().splitlines() if line.strip()]
    return {
        "command": " ".join(cmd[1:]),
        "returncode": proc.returncode,
        "summary": lines[-1] if lines else proc.stderr.strip()[-500:],
        "seconds": round(time.perf_counter() - start, 1),
        "output_tail": proc.stdout[-3000:],
    }


def engine_benchmark(device: str, scale: float, repeats: int, dtype_name: str) -> dict[str, Any]:
    """bench_sparse's layer and network rows on `device` under one dtype, with their floors."""
    amp = DTYPES[dtype_name]
    coords = bench.make_room(scale)
    weights: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {}
    outputs: dict[str, torch.Tensor] = {}
    rows, pairs = bench.bench_layers(
        NATIVE, "native", coords, device, repeats, weights, outputs, amp
    )
    rows += bench.bench_network("native", coords, device, repeats, state, outputs, amp)
    floor = bench.Floor(device, amp or torch.float32)
    floors = bench.layer_floors(floor, pairs)
    model = bench.build_network("native", device, state)
    c = torch.from_numpy(coords).int().to(device)
    floors["res16unet34c"] = bench.network_floor(
        model, NATIVE, c, torch.rand(len(c), 3, device=device), floor
    )
    return {
        "voxels": len(coords),
        "pairs": pairs,
        "comparison": bench.compare(rows, {device: floors}),
        "results": rows,
    }


def batched_rooms(batch: int, scale: float) -> torch.Tensor:
    """Coordinates [N, 4] of `batch` different synthetic rooms at 2 cm, batch index first."""
    parts = []
    for b in range(batch):
        room = bench.make_room(scale, seed=b)
        room[:, 0] = b
        parts.append(room)
    return torch.from_numpy(np.concatenate(parts)).int()


def training_step(
    device: str, batch: int, scale: float, repeats: int, dtype_name: str
) -> dict[str, Any]:
    """Res16UNet34C forward + cross entropy + backward + SGD step on `batch` rooms; peak memory."""
    from stseg_models import build_model

    amp_dtype = DTYPES[dtype_name]
    coords = batched_rooms(batch, scale).to(device)
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(len(coords), 3, generator=g).to(device)
    labels = torch.randint(0, 20, (len(coords),), generator=g).to(device)
    model = build_model("Res16UNet34C", 3, 20, backend="native").to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    amp = torch.autocast(device, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
    scaler = torch.amp.GradScaler(device, enabled=dtype_name == "fp16")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for _ in range(repeats + 1):  # the first step is a warm-up
        sync()
        start = time.perf_counter()
        with amp:
            out = model(NATIVE.SparseTensor(feats, coords))
            loss = F.cross_entropy(out.F.float(), labels)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
        del out, loss
    result: dict[str, Any] = {
        "batch": batch,
        "voxels": len(coords),
        "dtype": dtype_name,
        "step_median_s": round(statistics.median(times[1:]), 4),
        "step_min_s": round(min(times[1:]), 4),
        "warmup_s": round(times[0], 4),
        "losses": [round(v, 4) for v in losses],
        "finite": all(np.isfinite(losses)),
    }
    if device == "cuda":
        result["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def guarded(report: dict[str, Any], key: str, fn: Any, *args: Any) -> None:
    """report[key] = fn(*args), or the error and traceback tail if it raised; then save."""
    start = time.perf_counter()
    try:
        report[key] = fn(*args)
    except Exception as exc:  # one failing part must not hide the others' figures
        report[key] = {
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-2000:],
        }
        report["failures"].append(key)
        print(f"{key} FAILED: {exc}", flush=True)
    report.setdefault("part_seconds", {})[key] = round(time.perf_counter() - start, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="output JSON path")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="small rooms, one repeat (dry run)")
    parser.add_argument("--skip-tests", action="store_true", help="no pytest subprocess")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--scale", type=float, default=None,
                        help="room size as a fraction of the 218k-voxel room (default 1, 0.25 with --quick)")  # fmt: skip
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit(
            f"no CUDA device visible to torch {torch.__version__} (CUDA build: {torch.version.cuda})"
        )
    scale = args.scale if args.scale is not None else 0.25 if args.quick else 1.0
    if not 0 < scale <= 4:
        parser.error(f"--scale {scale}: expected a fraction in (0, 4]")
    repeats = 1 if args.quick else 3
    torch.manual_seed(0)
    report: dict[str, Any] = {
        "environment": environment(args.device),
        "quick": args.quick,
        "scale": scale,
        "failures": [],
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def save() -> None:
        report["seconds_total"] = round(time.perf_counter() - started, 1)
        if args.device == "cuda":
            report["peak_gpu_memory_mib_overall"] = round(
                torch.cuda.max_memory_allocated() / 2**20, 1
            )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=2, default=str))
        os.replace(tmp, path)

    if not args.skip_tests:
        guarded(report, "gpu_tests", run_gpu_tests)
        tests = report["gpu_tests"]
        if isinstance(tests, dict) and tests.get("returncode") not in (0, None):
            report["failures"].append("gpu_tests")
        save()
    for name in DTYPES:
        guarded(report, f"engine_{name}", engine_benchmark, args.device, scale, repeats, name)
        save()
    for name in ("fp32", "bf16"):
        guarded(
            report,
            f"train_step_batch{args.batch}_{name}",
            training_step,
            args.device,
            args.batch,
            scale,
            repeats,
            name,
        )
        save()
    save()
    print(f"wrote {path} in {report['seconds_total']} s; failures: {report['failures'] or 'none'}")
    for key, value in report.items():
        if key.startswith("train_step") and isinstance(value, dict) and "step_median_s" in value:
            print(
                f"{key}: {value['voxels']} voxels, {value['step_median_s']} s/step, peak {value.get('peak_gpu_memory_mib', '-')} MiB"
            )
    sys.exit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()
