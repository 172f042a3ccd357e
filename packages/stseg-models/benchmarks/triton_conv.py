"""Triton sparse-convolution kernels against the engine's torch passes, on a GPU: time and agreement.

    python triton_conv.py --json OUT.json [--points 100000] [--repeats 20] [--dtypes fp32,bf16,fp16]
    python triton_conv.py --json OUT.json --interpret     # CPU: a tiny functional run, no timings

On a random 3D surface cloud (spheres' shells voxelised at unit size, `--points` voxels, one scene)
it runs, per layer (3x3x3 at 32, 64 and 128 channels, a 2x2x2 stride-2 down-convolution and its
transpose) and per dtype, both paths on the same kernel map and the same inputs:

* the engine's `SparseConvolutionFunction` (torch ops; forced with ``STSEG_TRITON=0`` so it stays
  the torch path once the engine dispatches to Triton itself),
* `stseg_models.sparse.triton.triton_conv` (the Triton kernels),

and records the median forward time (no autograd), the median forward + backward time, the peak
GPU memory of one forward + backward, the first call's time (compilation and neighbour tables),
and each path's largest error (max |error| / max |reference| of the output and both gradients)
against a float32 torch reference from the same rounded inputs. The JSON is written again after
every row (a run cut short keeps what it measured); a path that raises is recorded ("failed") and the
run goes on. Exit 1 when a Triton run failed or an error is over its
tolerance, 2 when the run cannot start (no GPU without --interpret, no Triton).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# the Triton path sums in float32 and rounds once: its error is about the output's rounding
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-3, "bf16": 1.6e-2}


@dataclass(frozen=True)
class Layer:
    name: str
    kernel: int
    stride: int
    c_in: int
    c_out: int
    transpose: bool = False


LAYERS = [
    Layer("conv3 32->32", 3, 1, 32, 32),
    Layer("conv3 64->64", 3, 1, 64, 64),
    Layer("conv3 128->128", 3, 1, 128, 128),
    Layer("down2 64->128", 2, 2, 64, 128),
    Layer("up2 128->64", 2, 2, 128, 64, transpose=True),
]
TINY_LAYERS = [Layer("conv3 8->24", 3, 1, 8, 24), Layer("down2 24->16", 2, 2, 24, 16)]


def surface_cloud(points: int, seed: int = 0) -> np.ndarray:
    """int32 [points, 4] (batch 0): unique voxels of random sphere shells, in lexicographic order.

    Shells give each voxel a scan-like neighbourhood (about a third of a 3x3x3 cube filled), unlike
    uniform noise; the first `points` voxels in x-major order are kept (a contiguous piece).
    """
    rng = np.random.default_rng(seed)
    extent = max(16.0, 2.2 * points ** (1 / 2))
    found = np.zeros((0, 3), dtype=np.int64)
    while len(found) < points:
        centre = rng.uniform(0, extent, 3)
        radius = rng.uniform(4, max(5.0, extent / 6))
        normal = rng.normal(size=(int(6 * 4 * np.pi * radius**2), 3))
        shell = centre + radius * normal / np.linalg.norm(normal, axis=1, keepdims=True)
        found = np.unique(np.concatenate([found, np.floor(shell).astype(np.int64)]), axis=0)
    coords = found[:points]
    return np.concatenate([np.zeros((points, 1), np.int64), coords], axis=1).astype(np.int32)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want| (0 when both are zero)."""
    scale = float(want.abs().max()) if want.numel() else 0.0
    diff = float((got.float() - want.float()).abs().max()) if want.numel() else 0.0
    return diff / scale if scale > 0 else diff


def engine_map(me: Any, coords: torch.Tensor, layer: Layer) -> Any:
    """The kernel map the engine's layer of that shape builds on `coords`."""
    x = me.SparseTensor(torch.zeros(len(coords), 1, device=coords.device), coords)
    manager, key = x.coordinate_manager, x.coordinate_map_key
    gen = me.MinkowskiConvolution(1, 1, layer.kernel, layer.stride, dimension=3).kernel_generator
    out_key = manager.stride(key, [layer.stride] * 3) if layer.stride > 1 else key
    kmap = manager.kernel_map_for(key, out_key, gen)
    return kmap.transposed() if layer.transpose else kmap


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_path(feats: torch.Tensor, weight: torch.Tensor, kmap: Any) -> torch.Tensor:
    """The engine's torch passes, whatever the engine would dispatch to."""
    from stseg_models.sparse.conv_function import SparseConvolutionFunction

    previous = os.environ.get("STSEG_TRITON")
    os.environ["STSEG_TRITON"] = "0"
    try:
        out: torch.Tensor = SparseConvolutionFunction.apply(feats, weight, kmap)
    finally:
        if previous is None:
            del os.environ["STSEG_TRITON"]
        else:
            os.environ["STSEG_TRITON"] = previous
    return out


def run_path(
    conv: Callable[..., torch.Tensor],
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    kmap: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, grad feats, grad weight) of one forward + backward."""
    feats, weight, grad_out = (t.detach().clone() for t in inputs)
    feats.requires_grad_(True)
    weight.requires_grad_(True)
    out = conv(feats, weight, kmap)
    out.backward(grad_out)
    assert feats.grad is not None and weight.grad is not None
    return out.detach(), feats.grad, weight.grad


def measure_path(
    conv: Callable[..., torch.Tensor],
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    kmap: Any,
    repeats: int,
    device: torch.device,
    timed: bool,
) -> dict[str, Any]:
    synchronize(device)
    start = time.perf_counter()
    run_path(conv, inputs, kmap)  # compilation, tables, plans
    synchronize(device)
    row: dict[str, Any] = {"first_call_s": time.perf_counter() - start}
    if not timed:
        return row
    feats, weight, _ = inputs
    with torch.no_grad():
        row["forward_ms"] = 1e3 * median_seconds(lambda: conv(feats, weight, kmap), repeats, device)
    row["train_ms"] = 1e3 * median_seconds(lambda: run_path(conv, inputs, kmap), repeats, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run_path(conv, inputs, kmap)
        row["peak_extra_mib"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return row


def environment(device: torch.device) -> dict[str, Any]:
    import triton

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "device": str(device),
        "interpreter": os.environ.get("TRITON_INTERPRET") == "1",
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["torch_cuda"] = torch.version.cuda
        info["allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return info


def bench(args: argparse.Namespace, device: torch.device) -> tuple[dict[str, Any], bool]:
    import stseg_models.sparse as me
    from stseg_models.sparse.triton import triton_conv

    layers = TINY_LAYERS if args.interpret else LAYERS
    coords = torch.from_numpy(surface_cloud(args.points, args.seed)).to(device)
    report: dict[str, Any] = {
        "environment": environment(device),
        "config": {
            "points": args.points,
            "repeats": args.repeats,
            "seed": args.seed,
            "timed": not args.interpret,
        },
        "results": [],
    }
    ok = True
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    for layer in layers:
        kmap = engine_map(me, coords, layer)
        pairs = sum(kmap.counts)
        for name in args.dtypes:
            dtype = DTYPES[name]
            feats = torch.randn(kmap.num_in, layer.c_in, generator=g)
            weight = torch.randn(kmap.kernel_volume, layer.c_in, layer.c_out, generator=g)
            weight /= (layer.c_in * kmap.kernel_volume / 3) ** 0.5
            grad_out = torch.randn(kmap.num_out, layer.c_out, generator=g)
            inputs = (
                feats.to(device=device, dtype=dtype),
                weight.to(device=device, dtype=dtype),
                grad_out.to(device=device, dtype=dtype),
            )
            # float32 from the rounded inputs: both paths see the same operands as the reference
            wide = (inputs[0].float(), inputs[1].float(), inputs[2].float())
            reference = run_path(torch_path, wide, kmap)
            row: dict[str, Any] = {
                "layer": layer.name,
                "dtype": name,
                "rows_in": kmap.num_in,
                "rows_out": kmap.num_out,
                "pairs": pairs,
                "fill": kmap.fill(),
            }
            for label, conv in (("torch", torch_path), ("triton", triton_conv)):
                try:
                    row[label] = measure_and_check(conv, inputs, kmap, reference, args, device)
                except Exception as exc:  # a kernel that fails to compile or run: keep going
                    row[label] = {"failed": f"{type(exc).__name__}: {exc}"[:2000]}
            errors = row["triton"].get("error")
            row["triton_ok"] = errors is not None and max(errors.values()) < TOLERANCE[name]
            ok &= row["triton_ok"]
            if all("train_ms" in row[label] for label in ("torch", "triton")):
                for key in ("forward_ms", "train_ms"):
                    row[f"speedup_{key[:-3]}"] = row["torch"][key] / row["triton"][key]
            report["results"].append(row)
            write(args.json, report)
            print(summary_line(row), flush=True)
    return report, ok


def measure_and_check(
    conv: Callable[..., torch.Tensor],
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    kmap: Any,
    reference: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    args: argparse.Namespace,
    device: torch.device,
) -> dict[str, Any]:
    """One path's timings and its errors against the float32 reference."""
    part = measure_path(conv, inputs, kmap, args.repeats, device, not args.interpret)
    got = run_path(conv, inputs, kmap)
    errors = [relative_error(a, b) for a, b in zip(got, reference, strict=True)]
    part["error"] = dict(zip(("out", "grad_feats", "grad_weight"), errors, strict=True))
    return part


def summary_line(row: dict[str, Any]) -> str:
    t, x = row["torch"], row["triton"]
    head = f"{row['layer']:<16} {row['dtype']}:"
    failed = [f"{k} failed: {row[k]['failed']}" for k in ("torch", "triton") if "failed" in row[k]]
    if failed:
        return f"{head} {'; '.join(failed)}"
    err = max(x["error"].values())
    if "forward_ms" not in t:
        return f"{head} triton error {err:.2e} ok={row['triton_ok']}"
    return (
        f"{head} forward {t['forward_ms']:.2f} -> "
        f"{x['forward_ms']:.2f} ms, train {t['train_ms']:.2f} -> {x['train_ms']:.2f} ms, "
        f"triton error {err:.2e} ok={row['triton_ok']}"
    )


def write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="where the results go")
    parser.add_argument("--points", type=int, default=None, help="voxels (default 100000)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per figure")
    parser.add_argument("--dtypes", default="fp32,bf16,fp16", help="comma list of fp32,bf16,fp16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--interpret",
        action="store_true",
        help="CPU only: run tiny sizes under Triton's interpreter (checks, no timings)",
    )
    args = parser.parse_args(argv)
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    unknown = [d for d in args.dtypes if d not in DTYPES]
    if unknown:
        parser.error(f"unknown dtype {unknown[0]!r} (choose from {', '.join(DTYPES)})")
    if args.points is None:
        args.points = 300 if args.interpret else 100_000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.interpret:
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
            sys.exit("triton_conv.py: Triton was imported before --interpret could turn it on")
        os.environ["TRITON_INTERPRET"] = "1"  # read by Triton when it is first imported
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print(
            f"triton_conv.py: no CUDA device (torch {torch.__version__}): this benchmark times "
            "GPU kernels; --interpret runs a tiny CPU check under Triton's interpreter instead",
            file=sys.stderr,
        )
        return 2
    else:
        device = torch.device("cuda")
    from stseg_models.sparse.triton import triton_import_error

    problem = triton_import_error()
    if problem:
        print(f"triton_conv.py: Triton does not import ({problem})", file=sys.stderr)
        return 2
    _, ok = bench(args, device)
    print(f"wrote {args.json}" + ("" if ok else " (a Triton run failed or is over its tolerance)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
