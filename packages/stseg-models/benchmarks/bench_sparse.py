"""Benchmark the sparse engine on a synthetic room (~220k voxels at 2 cm), native vs MinkowskiEngine.

    python bench_sparse.py --json OUT.json [--quick] [--repeats N] [--memory-only] [--scale S]

Times kernel-map construction, a 3x3x3 convolution 32->32 and 128->96, a stride-2 convolution and a
transposed convolution (forward and backward each), and a whole Res16UNet34C forward + backward
(`stseg_models.build_model`; a stack of equal-sized convolutions if the zoo is missing). Each
section also reports the peak resident-memory growth while it ran. MinkowskiEngine runs in the same
process when it imports (`stseg-models install-minkowski`), on the same coordinates with the same
weights; its outputs are checked against the native ones and the ratio ME time / native time is
reported. CUDA figures are added when a GPU is present. `--quick` uses a smaller room (< 60 s).

In-process peak figures depend on what the allocator kept from earlier sections, so the network's
peak memory is also measured per engine in a fresh subprocess (high-water mark minus the resident
size before the first pass): ``network_peak_rss_growth_mib``; `--memory-only` runs just that.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import stseg_models.sparse as NATIVE
from stseg_models.sparse.backend import import_minkowski


def make_room(scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Voxel coordinates [N, 4] (batch 0) of a furnished room surface: floor, 4 walls, tables, boxes."""
    rng = np.random.default_rng(seed)
    sx, sy, h = int(300 * scale), int(240 * scale), int(110 * scale)  # 2 cm voxels: 6 x 4.8 x 2.2 m
    parts = []

    def plane(a: np.ndarray, b: np.ndarray, fixed: int, axis: int, bump: float) -> None:
        u, v = np.meshgrid(a, b, indexing="ij")
        w = fixed + np.round(bump * np.sin(u / 37.0) * np.cos(v / 23.0)).astype(int)
        pts = [None, None, None]
        free = [i for i in range(3) if i != axis]
        pts[free[0]], pts[free[1]], pts[axis] = u.ravel(), v.ravel(), w.ravel()
        parts.append(np.stack(pts, 1))

    plane(np.arange(sx), np.arange(sy), 0, 2, 1.0)  # floor, slightly uneven
    for x in (0, sx - 1):
        plane(np.arange(sy), np.arange(h), x, 0, 0.0)
    for y in (0, sy - 1):
        plane(np.arange(sx), np.arange(h), y, 1, 0.0)
    for _ in range(int(6 * scale**2) + 1):  # furniture: box surfaces (tops and sides)
        x0, y0 = rng.integers(sx // 10, sx * 6 // 10), rng.integers(sy // 10, sy * 6 // 10)
        dx, dy, dz = (
            int(v * scale) + 1
            for v in (rng.integers(20, 60), rng.integers(20, 60), rng.integers(20, 45))
        )
        plane(np.arange(x0, x0 + dx), np.arange(y0, y0 + dy), dz, 2, 0.0)
        for x in (x0, x0 + dx):
            plane(np.arange(y0, y0 + dy), np.arange(dz), x, 0, 0.0)
        for y in (y0, y0 + dy):
            plane(np.arange(x0, x0 + dx), np.arange(dz), y, 1, 0.0)
    coords = np.unique(np.concatenate(parts), axis=0)
    coords = coords[(coords >= 0).all(1)]
    return np.concatenate([np.zeros((len(coords), 1), np.int32), coords.astype(np.int32)], 1)


class PeakRSS:
    """Peak resident-set growth (MiB) while the block runs, sampled every 2 ms from /proc."""

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.mib = (self.peak - self.base) / 2**20


def timed(fn: Callable[[], Any], repeats: int, device: str) -> dict[str, float]:
    """Median/min wall seconds and median CPU seconds over `repeats` runs after a warm-up; peak memory."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fn()
    sync()
    times, cpu = [], []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with PeakRSS() as mem:
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            sync()
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device == "cuda" else mem.mib
    # cpu_s (process CPU time, all threads) is less sensitive than wall time to other load
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "cpu_s": statistics.median(cpu),
        "peak_mib": round(peak, 1),
    }


# MinkowskiEngine 0.5.4 on these 2 cores (issue #3): seconds and multiple of its GEMM floor
# (same FLOPs as one dense matmul at ~86 GFLOP/s, 1.75 M neighbour pairs)
ME_REPORTED = {
    "conv3_32_32_fwd": (0.55, 0.55 / (1.75e6 * 32 * 32 * 2 / 86e9)),
    "conv3_128_96_fwd": (2.9, 2.9 / 0.5),
}
FLOOR_SHAPES = {"conv3_32_32": (32, 32), "conv3_128_96": (128, 96)}


def gemm_floor(pairs: int, cin: int, cout: int, device: str) -> float:
    """Seconds of one dense [pairs, cin] @ [cin, cout] matmul here and now: the layer's arithmetic floor."""
    a, b = torch.randn(pairs, cin, device=device), torch.randn(cin, cout, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def sorted_rows(coords: torch.Tensor) -> torch.Tensor:
    """Row order sorting integer coordinates lexicographically (to compare across engines)."""
    c = coords.long().cpu()
    key = torch.zeros(len(c), dtype=torch.long)
    for col in range(c.shape[1]):
        key = key * (int(c[:, col].max() - c[:, col].min()) + 1) + (c[:, col] - c[:, col].min())
    return torch.argsort(key)


def layer_sections(
    me: Any, coords: np.ndarray, device: str, weights: dict[str, torch.Tensor]
) -> dict[str, Callable]:
    """Closures for every per-layer section of one engine `me`, sharing `weights` across engines."""
    g = torch.Generator().manual_seed(0)
    c = torch.from_numpy(coords).int()
    f32 = torch.randn(len(c), 32, generator=g).to(device)
    f128 = torch.randn(len(c), 128, generator=g).to(device)
    dev = {} if me is NATIVE else {"device": device}

    def conv(cin: int, cout: int, k: int, stride: int = 1, transpose: bool = False) -> Any:
        cls = me.MinkowskiConvolutionTranspose if transpose else me.MinkowskiConvolution
        layer = cls(cin, cout, kernel_size=k, stride=stride, dimension=3).to(device)
        name = f"{cin}-{cout}-{k}-{stride}-{transpose}"
        w = weights.setdefault(name, layer.kernel.detach().cpu().clone())
        with torch.no_grad():
            layer.kernel.copy_(w)
        return layer

    def fresh(feats: torch.Tensor, tensor: Any = None) -> Any:
        x = feats.detach().clone().requires_grad_(True)
        if tensor is None:
            return me.SparseTensor(x, c.to(device), **dev)
        return me.SparseTensor(
            x,
            coordinate_map_key=tensor.coordinate_map_key,
            coordinate_manager=tensor.coordinate_manager,
        )

    base32 = fresh(f32)
    base128 = fresh(f128, base32)
    c33, c12896 = conv(32, 32, 3), conv(128, 96, 3)
    down, up = conv(32, 64, 2, 2), conv(64, 32, 2, 2, transpose=True)
    coarse = down(base32)
    coarse_in = fresh(coarse.F.detach(), coarse)
    kernel = me.KernelGenerator(3, dimension=3) if me is NATIVE else None
    outs: dict[str, Any] = {}

    def kernel_map() -> None:
        x = me.SparseTensor(f32, c.to(device), **dev)
        if me is NATIVE:
            x.coordinate_manager.kernel_map(x.coordinate_map_key, x.coordinate_map_key, kernel)
        else:  # MinkowskiEngine builds the map inside its first convolution
            x.coordinate_manager.kernel_map(
                x.coordinate_map_key, x.coordinate_map_key, kernel_size=3
            )

    def fwd(name: str, layer: Any, x: Any) -> Callable[[], None]:
        def run() -> None:
            outs[name] = layer(x)

        return run

    def bwd(name: str) -> Callable[[], None]:
        def run() -> None:
            y = outs[name]
            y.F.backward(torch.ones_like(y.F), retain_graph=True)

        return run

    sections = {
        "kernel_map_3x3x3": kernel_map,
        "conv3_32_32_fwd": fwd("c33", c33, base32),
        "conv3_32_32_bwd": bwd("c33"),
        "conv3_128_96_fwd": fwd("c12896", c12896, base128),
        "conv3_128_96_bwd": bwd("c12896"),
        "conv2_stride2_32_64_fwd": fwd("down", down, base32),
        "conv2_stride2_32_64_bwd": bwd("down"),
        "convtr2_stride2_64_32_fwd": fwd("up", up, coarse_in),
        "convtr2_stride2_64_32_bwd": bwd("up"),
    }
    sections["_outputs"] = outs  # type: ignore[assignment]
    return sections


def network_section(
    backend: str, coords: np.ndarray, device: str, state: dict[str, Any]
) -> Callable[[], None] | None:
    """Res16UNet34C forward + backward (None if that backend cannot build it)."""
    try:
        from stseg_models import build_model

        model = build_model("Res16UNet34C", 3, 20, backend=backend).to(device)
    except Exception:
        return None
    if "state" in state:
        model.load_state_dict(state["state"])
    else:
        state["state"] = model.state_dict()
    model.train()
    me = NATIVE if backend == "native" else import_minkowski()
    c = torch.from_numpy(coords).int().to(device)
    feats = torch.rand(len(c), 3, generator=torch.Generator().manual_seed(1)).to(device)
    dev = {} if backend == "native" else {"device": device}

    def run() -> None:
        out = model(me.SparseTensor(feats, c, **dev))
        out.F.square().mean().backward()

    return run


def measure(
    name: str, engine: str, device: str, fn: Callable[[], Any], repeats: int, pairs: int
) -> dict[str, Any]:
    """Time one section; conv sections also get their GEMM floor and a load-independent estimate."""
    row = {"section": name, "engine": engine, "device": device, **timed(fn, repeats, device)}
    shape = FLOOR_SHAPES.get(name.rsplit("_", 1)[0])
    if shape is not None and engine == "native":
        floor = gemm_floor(pairs, *shape, device) * (1 if name.endswith("fwd") else 2)
        row["gemm_floor_s"] = round(floor, 4)
        row["x_floor"] = round(row["median_s"] / floor, 2)
        if device == "cpu" and name in ME_REPORTED:
            # MinkowskiEngine's reported multiple of its own floor over ours: a speed-up estimate
            # that does not depend on how loaded this machine is
            row["est_speedup_vs_me_reported"] = round(ME_REPORTED[name][1] / row["x_floor"], 2)
    extra = f"  ({row['x_floor']}x GEMM floor)" if "x_floor" in row else ""
    print(
        f"{device:4s} {engine:9s} {name:28s} {row['median_s']:8.3f} s  cpu {row['cpu_s']:7.2f} s  peak +{row['peak_mib']:.0f} MiB{extra}",
        flush=True,
    )
    return row


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def network_memory_child(engine: str, scale: float) -> None:
    """In a fresh process: Res16UNet34C forward + backward twice; print peak RSS growth as JSON.

    The growth is the process's high-water mark minus its resident size just before the first
    pass, so it counts everything one training step needs (kernel maps, activations, gradients,
    transients) and nothing retained from other sections or the other engine.
    """
    torch.set_num_threads(2)
    coords = make_room(scale)
    run = network_section(engine, coords, "cpu", {})
    if run is None:
        print(json.dumps({"engine": engine, "peak_rss_growth_mib": None}))
        return
    before = _status_kib("VmRSS")
    for _ in range(2):
        run()
    peak = _status_kib("VmHWM")
    print(json.dumps({"engine": engine, "peak_rss_growth_mib": round((peak - before) / 1024, 1)}))


def network_memory(engine: str, scale: float) -> float | None:
    """Peak RSS growth (MiB) of a network step measured in a fresh subprocess (None on failure)."""
    import subprocess
    import sys

    cmd = [sys.executable, __file__, "--json", os.devnull, "--network-memory", engine]
    cmd += ["--scale", str(scale)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600)
        return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_growth_mib"]
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError) as exc:
        print(f"network memory for {engine} failed: {exc}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="output JSON path")
    parser.add_argument(
        "--network-memory",
        choices=["native", "minkowski"],
        help="internal: measure one engine's network peak memory in this (fresh) process",
    )
    parser.add_argument("--scale", type=float, default=None, help="room scale (default 1.0)")
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="only the fresh-process network peak-memory comparison",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small room, one repeat, no MinkowskiEngine network"
    )
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    scale = args.scale or (0.35 if args.quick else 1.0)
    if args.network_memory:
        network_memory_child(args.network_memory, scale)
        return
    if args.memory_only:
        engines_mem = ["native", "minkowski"]
        mem = {e: network_memory(e, scale) for e in engines_mem}
        print(f"Res16UNet34C fwd+bwd peak RSS growth, fresh process each (MiB): {json.dumps(mem)}")
        from stseg_data.atomic import atomic_write

        with atomic_write(args.json, "w") as fh:
            json.dump({"scale": scale, "network_peak_rss_growth_mib": mem}, fh, indent=2)
        return
    repeats = args.repeats or (1 if args.quick else 3)
    coords = make_room(scale=scale)
    try:
        import_minkowski()
        engines = ["native", "minkowski"]
    except Exception as exc:
        engines = ["native"]
        print(f"MinkowskiEngine not available: {exc}")
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    probe = NATIVE.SparseTensor(torch.zeros(len(coords), 1), torch.from_numpy(coords))
    kmap = probe.coordinate_manager.kernel_map(
        probe.coordinate_map_key, probe.coordinate_map_key, NATIVE.KernelGenerator(3, dimension=3)
    )
    pairs = int(kmap.in_idx.numel())
    print(
        f"{len(coords)} voxels, {pairs} neighbour pairs (3x3x3), {pairs / len(coords):.1f} per voxel"
    )
    results: list[dict[str, Any]] = []
    weights: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {}
    outputs: dict[str, dict[str, Any]] = {}
    checks: dict[str, float] = {}
    for device in devices:
        for engine in engines:
            if engine == "minkowski" and device != "cpu":
                continue  # the project's MinkowskiEngine build is CPU-only
            me = NATIVE if engine == "native" else import_minkowski()
            sections = layer_sections(me, coords, device, weights)
            outputs[engine] = sections.pop("_outputs")  # type: ignore[arg-type]
            for name, fn in sections.items():
                results.append(measure(name, engine, device, fn, repeats, pairs))
            if not (args.quick and engine == "minkowski"):
                net = network_section(engine, coords, device, state)
                if net is not None:
                    reps = max(1, repeats - 1)
                    results.append(
                        measure("res16unet34c_fwd_bwd", engine, device, net, reps, pairs)
                    )
    if "minkowski" in outputs:
        for name, y in outputs["native"].items():
            other = outputs["minkowski"][name]
            a = y.F.detach().cpu()[sorted_rows(y.C)]
            b = other.F.detach().cpu()[sorted_rows(other.C)]
            checks[name] = (
                float((a - b).abs().max() / b.abs().max()) if a.shape == b.shape else float("inf")
            )
    ratios = {}
    for r in results:
        if r["engine"] == "minkowski":
            nat = next(
                x
                for x in results
                if x["engine"] == "native" and x["section"] == r["section"] and x["device"] == "cpu"
            )
            ratios[r["section"]] = round(r["median_s"] / nat["median_s"], 2)
    network_mem = {}
    if not args.quick:
        network_mem = {e: network_memory(e, scale) for e in engines}
        print(f"Res16UNet34C fwd+bwd peak RSS growth, fresh process each (MiB): {network_mem}")
    report = {
        "voxels": len(coords),
        "pairs_3x3x3": pairs,
        "me_reported": {
            k: {"seconds": v[0], "x_floor": round(v[1], 2)} for k, v in ME_REPORTED.items()
        },
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
        "quick": args.quick,
        "results": results,
        "speedup_native_vs_minkowski": ratios,
        "max_relative_error_vs_minkowski": checks,
        # per engine, in a fresh process: high-water mark minus RSS before the first pass
        "network_peak_rss_growth_mib": network_mem,
    }
    print(f"{len(coords)} voxels; speed-up native vs MinkowskiEngine: {json.dumps(ratios)}")
    if checks:
        print(f"max relative error vs MinkowskiEngine: {json.dumps(checks)}")
    from stseg_data.atomic import atomic_write

    with atomic_write(args.json, "w") as fh:
        json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
