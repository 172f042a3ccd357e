"""Benchmark the sparse engine as training uses it, beside the GEMM floor and MinkowskiEngine.

    python bench_sparse.py --json OUT.json [--quick] [--threads N] [--repeats N] [--scale S]
                           [--memory-only] [--device cpu|cuda] [--autocast bf16|fp16] [--heap retain]

On a synthetic room (218k voxels at 2 cm, scale 1) it times, per engine in the same process:

* the 3x3x3 kernel map of a fresh coordinate set;
* a 3x3x3 convolution 32->32 and 128->96, a stride-2 convolution 32->64 and a transposed
  convolution 64->32, each in three modes: ``inference`` (forward under `torch.no_grad`),
  ``train_fwd`` (forward with input and weights requiring gradients, graph kept, as in training)
  and ``backward`` (of that forward's output, given a fixed output gradient; gradients are dropped
  before the next repeat, as `zero_grad(set_to_none=True)` does). Each repeat runs the three in
  that order, so the allocator sees what a training loop makes it see;
* Res16UNet34C: ``inference`` (eval, no_grad) and a training step, ``train_fwd`` (forward + cross
  entropy) and ``backward``, on a new coordinate set every time (kernel maps rebuilt, as for every
  new batch).

Beside each figure: the GEMM floor measured in the same run, i.e. the time of the same FLOPs as dense
`torch.mm` of matching shapes (a conv with P kernel-map pairs, C_in -> C_out: forward
[P, C_in] @ [C_in, C_out]; backward two GEMMs, the input gradient [P, C_out] @ [C_out, C_in] and the
weight gradient [C_in, P] @ [P, C_out]). The network's floor sums its layers'. Each shape's rate is
measured on a slab of at most FLOOR_ROWS rows (no page faults: output preallocated, best of 3) and
scaled to P rows.

MinkowskiEngine 0.5.4 runs as its users run it: layers built directly from the `MinkowskiEngine`
module, the network written directly on it (`me_res16unet.py`, same weights), never through stseg's
backend layer or zoo. Thread settings are the same for both: `--threads N` (default 2) sets torch's
threads and, before MinkowskiEngine is imported, OMP_NUM_THREADS and OPENBLAS_NUM_THREADS (its
OpenMP loops and the OpenBLAS GEMMs it calls); the JSON records what was in effect. Outputs are
checked against MinkowskiEngine's. `--memory-only` (and the full run) measures the network's peak
memory per engine in a fresh subprocess. `--quick`: a smaller room, one repeat (about a minute).

First, the small-input rows (`small_inputs.py`: 16, 1k and 10k points, SparseTensor creation +
convolution forward + backward per iteration, engines interleaved); `--small-only` runs just those.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from small_inputs import bench_small, print_small

import stseg_models.sparse as NATIVE
from stseg_models.sparse.backend import import_minkowski

FLOOR_ROWS = 2**18
# glibc settings of `--heap retain`: no block mapped on its own, the heap never trimmed, so freed
# activations are reused without page faults (what stseg_train.heap.retain_freed_memory sets)
RETAIN_HEAP_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}
MODES = ("inference", "train_fwd", "backward")
LAYERS = {  # name: (in, out, kernel size, stride, transposed)
    "conv3_32_32": (32, 32, 3, 1, False),
    "conv3_128_96": (128, 96, 3, 1, False),
    "conv2_stride2_32_64": (32, 64, 2, 2, False),
    "convtr2_stride2_64_32": (64, 32, 2, 2, True),
}


def make_room(scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Voxel coordinates [N, 4] (batch 0) of a furnished room surface: floor, 4 walls, tables, boxes."""
    rng = np.random.default_rng(seed)
    sx, sy, h = int(300 * scale), int(240 * scale), int(110 * scale)  # 2 cm voxels: 6 x 4.8 x 2.2 m
    parts: list[np.ndarray] = []

    def plane(a: np.ndarray, b: np.ndarray, fixed: int, axis: int, bump: float) -> None:
        u, v = np.meshgrid(a, b, indexing="ij")
        w = fixed + np.round(bump * np.sin(u / 37.0) * np.cos(v / 23.0)).astype(int)
        pts: list[Any] = [None, None, None]
        free = [i for i in range(3) if i != axis]
        pts[free[0]], pts[free[1]], pts[axis] = u.ravel(), v.ravel(), w.ravel()
        parts.append(np.stack(pts, 1))

    plane(np.arange(sx), np.arange(sy), 0, 2, 1.0)  # floor, slightly uneven
    for x in (0, sx - 1):
        plane(np.arange(sy), np.arange(h), x, 0, 0.0)
    for y in (0, sy - 1):
        plane(np.arange(sx), np.arange(h), y, 1, 0.0)
    for _ in range(int(6 * scale**2) + 1):  # furniture: box surfaces (tops and sides)
        x0, y0 = (
            int(rng.integers(sx // 10, sx * 6 // 10)),
            int(rng.integers(sy // 10, sy * 6 // 10)),
        )
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
    """Peak resident-set growth (MiB) while the block runs, sampled every 5 ms from /proc."""

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
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.mib = (self.peak - self.base) / 2**20


class Clock:
    """Wall and process-CPU seconds of a block, synchronising a GPU before both readings."""

    def __init__(self, device: str) -> None:
        self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        self.samples: dict[str, list[tuple[float, float]]] = {}

    def __call__(self, mode: str, fn: Callable[[], Any]) -> Any:
        self.sync()
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        self.sync()
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        self.samples.setdefault(mode, []).append((wall, cpu))
        return result

    def summary(self, skip_first: bool = True) -> dict[str, dict[str, float]]:
        """Per mode: median and min wall seconds and median CPU seconds (warm-up dropped)."""
        out = {}
        for mode, runs in self.samples.items():
            kept = runs[1:] if skip_first and len(runs) > 1 else runs
            out[mode] = {
                "median_s": statistics.median(w for w, _ in kept),
                "min_s": min(w for w, _ in kept),
                "cpu_s": statistics.median(c for _, c in kept),
                "runs": len(kept),
            }
        return out


# -- the GEMM floor ---------------------------------------------------------------------------------
class Floor:
    """Seconds of dense GEMMs with the FLOPs of a sparse layer, measured here and now (cached rates).

    Both wall seconds and process CPU seconds (all threads) are kept: on a loaded machine the CPU
    seconds of the floor and of a layer stay comparable when their wall times do not.
    """

    def __init__(self, device: str, dtype: torch.dtype = torch.float32) -> None:
        self.device, self.dtype = device, dtype
        self._rate: dict[tuple[str, int, int], tuple[float, float]] = {}  # (wall, cpu) per row

    def _per_row(self, kind: str, cin: int, cout: int, rows: int, cpu: bool) -> float:
        key = (kind, cin, cout)
        if key not in self._rate:
            m = max(1, min(rows, FLOOR_ROWS))
            opts: dict[str, Any] = {"device": self.device, "dtype": self.dtype}
            a, b = torch.randn(m, cin, **opts), torch.randn(cin, cout, **opts)
            g = torch.randn(m, cout, **opts)
            c, gi, gw = (
                torch.empty(m, cout, **opts),
                torch.empty(m, cin, **opts),
                torch.empty_like(b),
            )
            sync = torch.cuda.synchronize if self.device == "cuda" else (lambda: None)

            def run() -> None:
                if kind == "fwd":
                    torch.mm(a, b, out=c)
                elif kind == "grad_in":
                    torch.mm(g, b.t(), out=gi)
                else:
                    torch.mm(a.t(), g, out=gw)

            best, best_cpu = float("inf"), float("inf")
            for _ in range(4):  # the first run touches the pages; the best of the others counts
                sync()
                start, start_cpu = time.perf_counter(), time.process_time()
                run()
                sync()
                best = min(best, time.perf_counter() - start)
                best_cpu = min(best_cpu, time.process_time() - start_cpu)
            self._rate[key] = (best / m, best_cpu / m)
        return self._rate[key][1 if cpu else 0] * rows

    def forward(self, pairs: int, cin: int, cout: int, cpu: bool = False) -> float:
        """[pairs, cin] @ [cin, cout]."""
        return self._per_row("fwd", cin, cout, pairs, cpu)

    def backward(
        self, pairs: int, cin: int, cout: int, input_grad: bool = True, cpu: bool = False
    ) -> float:
        """Input gradient [pairs, cout] @ [cout, cin] (if asked) + weight gradient [cin, pairs] @ [pairs, cout]."""
        grad_in = self._per_row("grad_in", cin, cout, pairs, cpu) if input_grad else 0.0
        return grad_in + self._per_row("grad_w", cin, cout, pairs, cpu)

    def layer(self, pairs: int, cin: int, cout: int, cpu: bool = False) -> dict[str, float]:
        """Floor of each mode of one layer."""
        fwd = self.forward(pairs, cin, cout, cpu)
        return {
            "inference": fwd,
            "train_fwd": fwd,
            "backward": self.backward(pairs, cin, cout, cpu=cpu),
        }


def native_pairs(layer: Any, x: Any, y: Any) -> int:
    """Kernel-map pairs of a native convolution `layer` that mapped `x` to `y` (its cached map)."""
    if isinstance(layer.kernel, torch.Tensor) and layer.kernel.dim() == 2:
        return int(x.F.shape[0])  # 1x1: one pair per row
    kmap = x.coordinate_manager.kernel_map(
        x.coordinate_map_key, y.coordinate_map_key, layer.kernel_generator, layer.is_transpose
    )
    return int(sum(kmap.counts))


# -- per-layer sections -----------------------------------------------------------------------------
def sparse_input(me: Any, feats: torch.Tensor, coords: torch.Tensor, like: Any = None) -> Any:
    """A SparseTensor of `me` on `coords` (or on `like`'s coordinates), as a user makes one."""
    if like is not None:
        return me.SparseTensor(
            feats,
            coordinate_map_key=like.coordinate_map_key,
            coordinate_manager=like.coordinate_manager,
        )
    return me.SparseTensor(feats, coords)


def bench_layers(
    me: Any,
    engine: str,
    coords: np.ndarray,
    device: str,
    repeats: int,
    weights: dict[str, torch.Tensor],
    outputs: dict[str, torch.Tensor],
    autocast: torch.dtype | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows (section, mode, engine, times) for every layer of `LAYERS` plus the kernel map.

    `weights` is shared across engines (first engine's initial kernels); `outputs` receives each
    layer's inference output in lexicographic coordinate order, for the cross-engine check.
    Returns the rows and, for the native engine, each layer's kernel-map pair count.
    """
    g = torch.Generator().manual_seed(0)
    c = torch.from_numpy(coords).int().to(device)
    feats = {
        32: torch.randn(len(c), 32, generator=g).to(device),
        128: torch.randn(len(c), 128, generator=g).to(device),
    }
    amp = torch.autocast(device, dtype=autocast) if autocast is not None else nullcontext()
    rows: list[dict[str, Any]] = []
    pairs: dict[str, int] = {}

    clock = Clock(device)
    for _ in range(repeats + 1):
        clock("kernel_map", lambda: kernel_map_once(me, feats[32], c))
    rows += [row("kernel_map_3x3x3", m, engine, device, s) for m, s in clock.summary().items()]

    base = sparse_input(me, feats[32], c)
    coarse: Any = None
    for name, (cin, cout, k, stride, transpose) in LAYERS.items():
        cls = me.MinkowskiConvolutionTranspose if transpose else me.MinkowskiConvolution
        layer = cls(cin, cout, kernel_size=k, stride=stride, dimension=3).to(device)
        w = weights.setdefault(name, layer.kernel.detach().cpu().clone())
        with torch.no_grad():
            layer.kernel.copy_(w.to(device))
        if transpose:  # reads the strided set that the stride-2 convolution before it made
            assert coarse is not None, "LAYERS lists the strided convolution first"
            src, like = coordinate_features(coarse.C, cin).to(device), coarse
        else:
            src, like = feats[cin], base
        grad_out: torch.Tensor | None = None
        clock = Clock(device)
        with PeakRSS() as mem:
            for _ in range(repeats + 1):  # the first cycle is a warm-up (maps, first touches)
                x = sparse_input(me, src, c, like)
                with torch.no_grad(), amp:
                    y = clock("inference", partial(layer, x))
                if name not in outputs:
                    outputs[name] = y.F.float().cpu()[lexsort(y.C)]
                if stride > 1 and not transpose:
                    coarse = y
                xg = sparse_input(me, src.detach().clone().requires_grad_(True), c, like)
                with amp:
                    yg = clock("train_fwd", partial(layer, xg))
                if grad_out is None:
                    grad_out = torch.randn(yg.F.shape, generator=g).to(device, yg.F.dtype)
                    if engine == "native":
                        pairs[name] = native_pairs(layer, xg, yg)
                clock("backward", partial(yg.F.backward, grad_out))
                layer.kernel.grad = None  # as zero_grad(set_to_none=True); y, yg die next cycle
        for mode, stats in clock.summary().items():
            rows.append(row(name, mode, engine, device, stats, peak_mib=mem.mib))
    return rows, pairs


def coordinate_features(coords: torch.Tensor, channels: int) -> torch.Tensor:
    """Features [N, channels] that are a fixed function of each row's coordinates.

    The engines order a strided set's rows differently; features tied to coordinates (not to row
    numbers) give both the same input, so their outputs can be compared.
    """
    mix = torch.randn(coords.shape[1], channels, generator=torch.Generator().manual_seed(5))
    return torch.sin(coords.detach().cpu().double() @ mix.double() * 0.37).float()


def kernel_map_once(me: Any, feats: torch.Tensor, c: torch.Tensor) -> None:
    """A fresh coordinate set and its 3x3x3 same-set kernel map."""
    x = me.SparseTensor(feats, c)
    manager = x.coordinate_manager
    if me is NATIVE:
        manager.kernel_map(
            x.coordinate_map_key, x.coordinate_map_key, me.KernelGenerator(3, dimension=3)
        )
    else:  # MinkowskiEngine 0.5.4's own signature
        manager.kernel_map(x.coordinate_map_key, x.coordinate_map_key, kernel_size=3)


def lexsort(coords: torch.Tensor) -> torch.Tensor:
    """Row order sorting integer coordinates lexicographically (to compare across engines)."""
    c = coords.long().cpu()
    key = torch.zeros(len(c), dtype=torch.long)
    for col in range(c.shape[1]):
        key = key * (int(c[:, col].max() - c[:, col].min()) + 1) + (c[:, col] - c[:, col].min())
    return torch.argsort(key)


def row(
    section: str, mode: str, engine: str, device: str, stats: dict[str, float], **extra: Any
) -> dict[str, Any]:
    out = {"section": section, "mode": mode, "engine": engine, "device": device, **stats, **extra}
    print(
        f"{device:4s} {engine:9s} {section:24s} {mode:10s} {stats['median_s']:8.4f} s"
        f"  (cpu {stats['cpu_s']:.3f} s)",
        flush=True,
    )
    return out


# -- the network ------------------------------------------------------------------------------------
def build_network(engine: str, device: str, state: dict[str, Any]) -> torch.nn.Module:
    """Res16UNet34C: stseg's zoo (native) or written directly on MinkowskiEngine; shared weights."""
    if engine == "native":
        from stseg_models import build_model

        model = build_model("Res16UNet34C", 3, 20, backend="native")
    else:
        from me_res16unet import Res16UNet34C

        from stseg_models.sparse.backend import import_minkowski

        model = Res16UNet34C(import_minkowski(), 3, 20)
    if "state" in state:
        model.load_state_dict(state["state"])
    else:
        state["state"] = {k: v.clone() for k, v in model.state_dict().items()}
    return model.to(device)


def layer_floors(floor: Floor, pairs: dict[str, int]) -> dict[str, dict[str, float]]:
    """{layer: {mode: wall s, mode_cpu: CPU s}} for every layer of `LAYERS`."""
    out = {}
    for name, (cin, cout, *_rest) in LAYERS.items():
        wall, cpu = floor.layer(pairs[name], cin, cout), floor.layer(pairs[name], cin, cout, True)
        out[name] = {**wall, **{f"{m}_cpu": v for m, v in cpu.items()}}
    return out


def network_floor(
    model: torch.nn.Module, me: Any, coords: torch.Tensor, feats: torch.Tensor, floor: Floor
) -> dict[str, float]:
    """GEMM floor of a native network's forward and backward: one inference pass collects the shapes."""
    shapes: list[tuple[int, int, int, bool]] = []
    hooks = []
    for module in model.modules():
        if isinstance(module, NATIVE.MinkowskiConvolution | NATIVE.MinkowskiConvolutionTranspose):

            def hook(layer: Any, args: tuple[Any, ...], y: Any) -> None:
                x = args[0]
                first = layer is getattr(model, "conv0p1s1", None)  # its input needs no gradient
                shapes.append(
                    (native_pairs(layer, x, y), layer.in_channels, layer.out_channels, not first)
                )

            hooks.append(module.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        model(me.SparseTensor(feats, coords))
    for h in hooks:
        h.remove()
    out = {}
    for suffix, cpu in (("", False), ("_cpu", True)):
        fwd = sum(floor.forward(p, i, o, cpu=cpu) for p, i, o, _ in shapes)
        bwd = sum(floor.backward(p, i, o, grad_in, cpu=cpu) for p, i, o, grad_in in shapes)
        out.update(
            {
                f"{m}{suffix}": v
                for m, v in (
                    ("inference", fwd),
                    ("train_fwd", fwd),
                    ("backward", bwd),
                    ("train_step", fwd + bwd),
                )
            }
        )
    return out


def bench_network(
    engine: str,
    coords: np.ndarray,
    device: str,
    repeats: int,
    state: dict[str, Any],
    outputs: dict[str, torch.Tensor],
    autocast: torch.dtype | None = None,
) -> list[dict[str, Any]]:
    """Inference, training forward (with loss) and backward of Res16UNet34C; fresh coordinates each pass."""
    from stseg_models.sparse.backend import import_minkowski

    me = NATIVE if engine == "native" else import_minkowski()
    model = build_network(engine, device, state)
    c = torch.from_numpy(coords).int().to(device)
    g = torch.Generator().manual_seed(1)
    feats = torch.rand(len(c), 3, generator=g).to(device)
    labels = torch.randint(0, 20, (len(c),), generator=g).to(device)
    amp = torch.autocast(device, dtype=autocast) if autocast is not None else nullcontext()
    clock = Clock(device)
    with PeakRSS() as mem:
        for _ in range(repeats + 1):
            model.eval()
            with torch.no_grad(), amp:
                y = clock("inference", lambda: model(me.SparseTensor(feats, c)))
            if "network" not in outputs:
                outputs["network"] = y.F.float().cpu()[lexsort(y.C)]
            del y
            model.train()

            def forward() -> torch.Tensor:
                with amp:
                    out = model(me.SparseTensor(feats, c))
                    # rows of both engines' outputs follow their inputs' order (no duplicates)
                    return F.cross_entropy(out.F.float(), labels)

            loss = clock("train_fwd", forward)
            clock("backward", loss.backward)
            model.zero_grad(set_to_none=True)
            del loss
    rows = []
    summary = clock.summary()
    step = [
        (a[0] + b[0], a[1] + b[1])
        for a, b in zip(clock.samples["train_fwd"], clock.samples["backward"], strict=True)
    ]
    kept = step[1:] if len(step) > 1 else step
    summary["train_step"] = {
        "median_s": statistics.median(w for w, _ in kept),
        "min_s": min(w for w, _ in kept),
        "cpu_s": statistics.median(cp for _, cp in kept),
        "runs": len(kept),
    }
    for mode, stats in summary.items():
        rows.append(row("res16unet34c", mode, engine, device, stats, peak_mib=mem.mib))
    return rows


# -- fresh-process peak memory ----------------------------------------------------------------------
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def network_memory_child(engine: str, scale: float, threads: int) -> None:
    """In a fresh process: two Res16UNet34C training steps; print the peak RSS growth as JSON.

    The growth is the high-water mark minus the resident size just before the first pass: every
    thing one step needs (maps, activations, gradients, transients), nothing from other sections.
    """
    torch.set_num_threads(threads)
    coords = make_room(scale)
    model = build_network(engine, "cpu", {}).train()
    if engine == "native":
        me: Any = NATIVE
    else:
        from stseg_models.sparse.backend import import_minkowski

        me = import_minkowski()
    c = torch.from_numpy(coords).int()
    feats = torch.rand(len(c), 3, generator=torch.Generator().manual_seed(1))
    labels = torch.zeros(len(c), dtype=torch.long)
    before = _status_kib("VmRSS")
    for _ in range(2):
        F.cross_entropy(model(me.SparseTensor(feats, c)).F, labels).backward()
        model.zero_grad(set_to_none=True)
    peak = _status_kib("VmHWM")
    print(json.dumps({"engine": engine, "peak_rss_growth_mib": round((peak - before) / 1024, 1)}))


def network_memory(engine: str, scale: float, threads: int) -> float | None:
    """Peak RSS growth (MiB) of a training step, measured in a fresh subprocess (None on failure)."""
    import subprocess

    cmd = [sys.executable, __file__, "--json", os.devnull, "--network-memory", engine]
    cmd += ["--scale", str(scale), "--threads", str(threads)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800)
        return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_growth_mib"]
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError) as exc:
        print(f"network memory for {engine} failed: {exc}")
        return None


# -- report -----------------------------------------------------------------------------------------
def compare(
    results: list[dict[str, Any]], floors: dict[str, dict[str, dict[str, float]]]
) -> list[dict[str, Any]]:
    """One row per (section, mode, device): native, MinkowskiEngine, their ratio and the floor."""
    table = []
    native = [r for r in results if r["engine"] == "native"]
    for r in native:

        def find(engine: str, r: dict[str, Any] = r) -> dict[str, Any] | None:
            key = (r["section"], r["mode"], r["device"])
            match = (
                x
                for x in results
                if x["engine"] == engine and (x["section"], x["mode"], x["device"]) == key
            )
            return next(match, None)

        me, blas1 = find("minkowski"), find("minkowski_blas1")
        section_floor = floors.get(r["device"], {}).get(r["section"], {})
        floor, floor_cpu = section_floor.get(r["mode"]), section_floor.get(f"{r['mode']}_cpu")
        entry: dict[str, Any] = {
            "section": r["section"],
            "mode": r["mode"],
            "device": r["device"],
            "native_s": round(r["median_s"], 4),
            "minkowski_s": round(me["median_s"], 4) if me else None,
            "speedup_vs_minkowski": round(me["median_s"] / r["median_s"], 2) if me else None,
            "gemm_floor_s": round(floor, 4) if floor else None,
            "native_x_floor": round(r["median_s"] / floor, 2) if floor else None,
            "minkowski_x_floor": round(me["median_s"] / floor, 2) if floor and me else None,
            # the same from process CPU seconds (all threads): steadier on a loaded machine
            "native_cpu_s": round(r["cpu_s"], 4),
            "minkowski_cpu_s": round(me["cpu_s"], 4) if me else None,
            "speedup_vs_minkowski_cpu": round(me["cpu_s"] / r["cpu_s"], 2) if me else None,
            "native_x_floor_cpu": round(r["cpu_s"] / floor_cpu, 2) if floor_cpu else None,
            "minkowski_x_floor_cpu": round(me["cpu_s"] / floor_cpu, 2)
            if floor_cpu and me
            else None,
        }
        if blas1 is not None:  # MinkowskiEngine with one OpenBLAS thread; and the faster of both
            best = min(x["median_s"] for x in (me, blas1) if x is not None)
            entry["minkowski_blas1_s"] = round(blas1["median_s"], 4)
            entry["minkowski_blas1_cpu_s"] = round(blas1["cpu_s"], 4)
            entry["speedup_vs_minkowski_best"] = round(best / r["median_s"], 2)
        table.append(entry)
    return table


def print_table(table: list[dict[str, Any]]) -> None:
    """Markdown table: wall seconds and ratios, then the same ratios from CPU seconds."""

    def f(v: Any, digits: int = 3) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    print(
        "\n| section | mode | native s | ME s | ME / native | floor s | native / floor | ME / floor "
        "| ME / native (cpu s) | native / floor (cpu s) | ME 1 BLAS thread s | best ME / native |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for e in table:
        print(
            f"| {e['section']} ({e['device']}) | {e['mode']} | {f(e['native_s'])} | "
            f"{f(e['minkowski_s'])} | {f(e['speedup_vs_minkowski'], 2)} | {f(e['gemm_floor_s'])} | "
            f"{f(e['native_x_floor'], 2)} | {f(e['minkowski_x_floor'], 2)} | "
            f"{f(e['speedup_vs_minkowski_cpu'], 2)} | {f(e['native_x_floor_cpu'], 2)} | "
            f"{f(e.get('minkowski_blas1_s'))} | {f(e.get('speedup_vs_minkowski_best'), 2)} |"
        )
    for e in table:
        if "native_x_fp32_floor" in e:  # autocast runs: against the float32 floor as well
            print(f"{e['section']} {e['mode']}: native {f(e['native_s'])} s = "
                  f"{f(e['native_x_fp32_floor'], 2)} x the fp32 floor ({f(e['fp32_gemm_floor_s'])} s)")  # fmt: skip


def set_threads(threads: int) -> dict[str, Any]:
    """Same threads for both engines: torch's pool now, MinkowskiEngine's OpenMP/OpenBLAS at import."""
    torch.set_num_threads(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)  # read by the libraries MinkowskiEngine loads on import
    return {
        "torch": torch.get_num_threads(),
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
    }


def _openblas(name: str) -> Any:
    """A function of the OpenBLAS loaded in this process (MinkowskiEngine's GEMMs), or None."""
    import ctypes

    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
        for lib in sorted(libs):
            fn = getattr(ctypes.CDLL(lib), name, None)
            if fn is not None:
                return fn
    except OSError:
        return None
    return None


def openblas_threads() -> int | None:
    """Threads of the loaded OpenBLAS, if one is loaded."""
    fn = _openblas("openblas_get_num_threads")
    return int(fn()) if fn is not None else None


def set_openblas_threads(threads: int) -> bool:
    """Resize the loaded OpenBLAS's thread pool; False when there is none to resize."""
    fn = _openblas("openblas_set_num_threads")
    if fn is None:
        return False
    fn(threads)
    return openblas_threads() == threads


def max_rel_error(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    out = {}
    for name, x in a.items():
        y = b.get(name)
        if y is not None:
            out[name] = (
                float((x - y).abs().max() / y.abs().max()) if x.shape == y.shape else float("inf")
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="output JSON path")
    parser.add_argument("--network-memory", choices=["native", "minkowski"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--scale", type=float, default=None, help="room scale (default 1.0: 218k voxels)"
    )
    parser.add_argument(
        "--memory-only", action="store_true", help="only the fresh-process network peak memory"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small room (scale 0.35), one repeat, no memory subprocesses",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per section (default 3; network 2)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU threads for both engines (default 2)"
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="default: cpu, and cuda when present",
    )
    parser.add_argument(
        "--autocast",
        choices=["bf16", "fp16"],
        default=None,
        help="native rows under torch.autocast",
    )
    parser.add_argument("--no-minkowski", action="store_true", help="native engine only")
    parser.add_argument(
        "--small-only",
        action="store_true",
        help="only the small-input rows (16 / 1k / 10k points, small_inputs.py)",
    )
    parser.add_argument(
        "--small-rounds", type=int, default=0, help="interleaved rounds per small row (default 30)"
    )
    parser.add_argument(
        "--heap",
        choices=["default", "retain"],
        default="default",
        help="retain: glibc keeps freed memory for reuse (no mmap'd blocks, no trimming), for "
        "both engines, as stseg-train's runtime.heap_mode=retain (default: glibc's own policy)",
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the fresh-process peak-memory runs"
    )
    args = parser.parse_args()
    if args.heap == "retain" and os.environ.get("MALLOC_MMAP_MAX_") != "0":
        # glibc reads its tunables at process start: run again with them (children inherit)
        env = {**os.environ, **RETAIN_HEAP_ENV}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    scale = args.scale or (0.35 if args.quick else 1.0)
    threads = set_threads(args.threads)
    if args.network_memory:
        network_memory_child(args.network_memory, scale, args.threads)
        return
    engines = ["native"]
    me_error = None
    if not args.no_minkowski:
        try:
            import_minkowski()
            engines.append("minkowski")
        except Exception as exc:
            me_error = str(exc)
            print(f"MinkowskiEngine not available: {exc}")
    threads["openblas_loaded"] = openblas_threads()
    if "minkowski" in engines and args.threads > 1 and set_openblas_threads(args.threads):
        # MinkowskiEngine's GEMMs use OpenBLAS's own thread pool beside torch's OpenMP pool; both
        # busy-wait, so on few cores ME can run faster with one OpenBLAS thread: time that too
        engines.append("minkowski_blas1")
    from stseg_data.atomic import atomic_write

    small_engines = {e: NATIVE if e == "native" else import_minkowski() for e in engines[:2]}
    load_at_start = os.getloadavg()
    small = bench_small(small_engines, args.small_rounds or (10 if args.quick else 30))
    print_small(small)
    if args.small_only:
        report = {
            "threads": threads,
            "torch": torch.__version__,
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
            "small_inputs": small,
        }
        with atomic_write(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
        print(f"wrote {args.json}")
        return
    if args.memory_only:
        mem = {e: network_memory(e, scale, args.threads) for e in engines}
        print(
            f"Res16UNet34C training step peak RSS growth, fresh process each (MiB): {json.dumps(mem)}"
        )
        with atomic_write(args.json, "w") as fh:
            json.dump(
                {"scale": scale, "threads": threads, "network_peak_rss_growth_mib": mem},
                fh,
                indent=2,
            )
        return
    repeats = args.repeats or (1 if args.quick else 3)
    net_repeats = args.repeats or (1 if args.quick else 2)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[args.autocast]
    coords = make_room(scale=scale)
    devices = (
        [args.device]
        if args.device
        else (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    )
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    floors: dict[str, dict[str, dict[str, float]]] = {}
    outputs: dict[str, dict[str, torch.Tensor]] = {}
    weights: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {}
    pairs: dict[str, int] = {}
    fp32_floors: dict[str, dict[str, dict[str, float]]] = {}
    for device in devices:
        floor = Floor(device, amp_dtype or torch.float32)
        for engine in engines:
            if engine.startswith("minkowski") and device != "cpu":
                continue  # the project's MinkowskiEngine build is CPU-only
            me = NATIVE if engine == "native" else import_minkowski()
            if engine.startswith("minkowski"):
                # as its users run it: OpenBLAS with as many threads as torch; then with one
                set_openblas_threads(1 if engine == "minkowski_blas1" else args.threads)
            outs = outputs.setdefault(f"{engine}-{device}", {})
            rows, layer_pairs = bench_layers(
                me, engine, coords, device, repeats, weights, outs, amp_dtype
            )
            results += rows
            pairs.update(layer_pairs)
            results += bench_network(engine, coords, device, net_repeats, state, outs, amp_dtype)
        dev_floor = layer_floors(floor, pairs)
        model = build_network("native", device, state)
        c = torch.from_numpy(coords).int().to(device)
        feats = torch.rand(len(c), 3).to(device)
        dev_floor["res16unet34c"] = network_floor(model, NATIVE, c, feats, floor)
        floors[device] = dev_floor
        if amp_dtype is not None:  # the floor to beat: float32 GEMMs of the same FLOPs
            fp32_floor = Floor(device, torch.float32)
            fp32_floors[device] = {
                "res16unet34c": network_floor(model, NATIVE, c, feats, fp32_floor)
            }
    checks = {}
    if "minkowski-cpu" in outputs:
        checks = max_rel_error(outputs["native-cpu"], outputs["minkowski-cpu"])
    network_mem: dict[str, float | None] = {}
    if not (args.quick or args.no_memory) and "cpu" in devices:
        network_mem = {
            e: network_memory(e, scale, args.threads) for e in engines if e != "minkowski_blas1"
        }
        print(
            f"Res16UNet34C training step peak RSS growth, fresh process each (MiB): {network_mem}"
        )
    table = compare(results, floors)
    for row in table:  # under autocast: native time against the float32 floor too
        fp32 = fp32_floors.get(row["device"], {}).get(row["section"], {}).get(row["mode"])
        if fp32:
            row["fp32_gemm_floor_s"] = round(fp32, 4)
            row["native_x_fp32_floor"] = round(row["native_s"] / fp32, 2)
    print_table(table)
    if checks:
        print(f"max relative error vs MinkowskiEngine: {json.dumps(checks)}")
    report = {
        "voxels": len(coords),
        "scale": scale,
        "pairs": pairs,
        "threads": threads,
        "heap": args.heap,
        "torch": torch.__version__,
        "autocast": args.autocast,
        "minkowski_error": me_error,
        "load_average_at_end": os.getloadavg(),
        "quick": args.quick,
        "seconds_total": round(time.perf_counter() - started, 1),
        "comparison": table,
        "floors": floors,
        "fp32_floors": fp32_floors,
        "results": results,
        "max_relative_error_vs_minkowski": checks,
        "small_inputs": small,
        "network_peak_rss_growth_mib": network_mem,
    }
    with atomic_write(args.json, "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"{len(coords)} voxels, {report['seconds_total']} s; wrote {args.json}")


if __name__ == "__main__":
    main()
