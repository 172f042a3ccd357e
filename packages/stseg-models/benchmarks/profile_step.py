"""Where one Res16UNet34C training step (forward + backward) spends its time, by category (CPU).

    python profile_step.py [--scale 1.0] [--threads 2] [--json OUT.json]

Runs `torch.profiler` over one native-engine step on the synthetic room of `bench_sparse.py`
(218k voxels at scale 1), after one unprofiled warm-up step. Every leaf operator's self time is
put in one category by the innermost engine function it ran under (the functions are wrapped in
`record_function` ranges for the run; no source file is changed) and by its name:

* GEMM: ``mm``/``addmm`` inside a convolution pass (forward, input and weight gradient);
* gather: ``index_select`` inside a convolution pass;
* scatter/reduce: ``embedding_bag``, ``index_put_``, ``add_``/``zero_`` inside a convolution pass;
* kernel maps: everything under coordinate hashing, striding, `kernel_map`, `reversed`, `plan`,
  `slots`, `sources` (built anew every step: each batch has new coordinates);
* BatchNorm, ReLU, cat (forward and their autograd backward nodes), and the rest;
* Python overhead: the step's wall time not spent inside any operator (interpreter, module calls,
  autograd bookkeeping, the profiler's own cost).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sparse import make_room

import stseg_models.sparse as NATIVE
from stseg_models.sparse import conv_function, coordinate_manager, kernel_map

PREFIX = "cat:"
AUTOGRAD_NODES = ("Backward", "Backward0", "Backward1")
VIEW_OPS = {"aten::select", "aten::slice", "aten::as_strided", "aten::t", "aten::view"}
GEMM_OPS = {"aten::mm", "aten::addmm", "aten::addmm_", "aten::matmul"}
GATHER_OPS = {"aten::index_select"}
SCATTER_OPS = {
    "aten::embedding_bag",
    "aten::_embedding_bag",
    "aten::_embedding_bag_forward_only",
    "aten::index_put_",
    "aten::_index_put_impl_",
    "aten::add_",
    "aten::zero_",
}


def _wrap(owner: Any, name: str, label: str) -> Callable[[], None]:
    """Replace owner.name by a version inside record_function(PREFIX + label); returns an undo."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with record_function(PREFIX + label):
            return original(*args, **kwargs)

    setattr(owner, name, wrapped)
    return lambda: setattr(owner, name, original)


@contextlib.contextmanager
def labelled_engine() -> Iterator[None]:
    """Engine functions wrapped in category ranges for the duration of the block."""
    cm, km = coordinate_manager.CoordinateManager, kernel_map.KernelMap
    undo = [_wrap(cm, n, "kmap") for n in ("insert_unique", "stride", "kernel_map")]
    undo += [_wrap(km, n, "kmap") for n in ("reversed", "plan", "slots", "sources")]
    undo += [_wrap(conv_function, n, "conv") for n in ("conv_forward", "conv_backward")]
    undo += [_wrap(NATIVE.MinkowskiBatchNorm, "forward", "bn")]
    try:
        yield
    finally:
        for fn in reversed(undo):
            fn()


def categorise(event: Any) -> str:
    """Category of one operator event, from its name and its innermost labelled range."""
    name = event.name
    if name in VIEW_OPS:
        return "views (select, slice, t: a few us per call)"
    parent, label = event.cpu_parent, None
    while parent is not None:
        if parent.name.startswith(PREFIX):
            label = parent.name[len(PREFIX) :]
            break
        parent = parent.cpu_parent
    if label == "kmap":
        return "kernel-map building (hash, stride, maps, plans)"
    if label == "conv":
        if name in GEMM_OPS:
            return "conv: GEMM"
        if name in GATHER_OPS:
            return "conv: gather"
        if name in SCATTER_OPS:
            return "conv: scatter/reduce"
        return "conv: other (allocation, fill, mul, copies)"
    if label == "bn" or "batch_norm" in name:
        return "BatchNorm"
    if "threshold" in name or "relu" in name:
        return "ReLU"
    if name == "aten::cat":
        return "cat (skips)"
    return "other operators (loss, grad accumulation, copies)"


def profile_step(scale: float, threads: int) -> dict[str, Any]:
    """Profile one training step; returns wall time, voxel count and seconds per category."""
    from stseg_models import build_model

    torch.set_num_threads(threads)
    coords = torch.from_numpy(make_room(scale)).int()
    feats = torch.rand(len(coords), 3, generator=torch.Generator().manual_seed(1))
    model = build_model("Res16UNet34C", 3, 20, backend="native").train()

    def step() -> None:
        out = model(NATIVE.SparseTensor(feats, coords))
        out.F.square().mean().backward()
        model.zero_grad(set_to_none=True)

    step()  # warm-up: first-touch costs, lazy initialisation
    start = time.perf_counter()
    step()
    plain = time.perf_counter() - start
    with labelled_engine(), profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        step()
        wall = time.perf_counter() - start
    shares: dict[str, float] = defaultdict(float)
    for event in prof.events():
        # self time excludes children, so nothing is counted twice; a range's own time and the
        # autograd engine's nodes are interpreter / bookkeeping time: left to the overhead below
        if event.name.startswith((PREFIX, "autograd::")) or event.name.endswith(AUTOGRAD_NODES):
            continue
        shares[categorise(event)] += event.self_cpu_time_total / 1e6
    in_ops = sum(shares.values())
    shares["Python / dispatch overhead (wall - operators)"] = max(0.0, wall - in_ops)
    return {
        "voxels": len(coords),
        "threads": threads,
        "step_s_unprofiled": round(plain, 3),
        "step_s_profiled": round(wall, 3),
        "seconds": {k: round(v, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="room scale (1.0: 218k voxels)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args()
    result = profile_step(args.scale, args.threads)
    wall = result["step_s_profiled"]
    print(
        f"Res16UNet34C training step, {result['voxels']} voxels, {args.threads} threads: "
        f"{result['step_s_unprofiled']:.2f} s unprofiled, {wall:.2f} s profiled"
    )
    print("| where | seconds | share |\n|---|---|---|")
    for name, sec in result["seconds"].items():
        print(f"| {name} | {sec:.3f} | {100 * sec / wall:.1f} % |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
