"""Random graphs of 20 MinkowskiEngine ops: native engine == MinkowskiEngine 0.5.4; `nox -s compat`.

Each seed draws a chain of 20 ops from the API (`OPS`), each applied to the newest tensor and, for
the binary ops, to an earlier tensor of the graph that fits (same coordinates, same stride or same
channels). The same graph is built in both engines, every layer with the native layer's weights,
in float64 (so a mismatch is a semantic difference, not rounding). Then every node is compared:
tensor stride, coordinates as sets, features with rows matched by coordinate; a loss over every
node is backpropagated and the input and every weight gradient compared.

Ops: convolution (random kernel 1-3, stride 1-2, dilation 1-2, bias), transposed convolution
(onto the finer set keyed "", generated if missing), generative transposed convolution, channel-wise convolution,
max / average / sum pooling, pooling transpose, global max / average / sum pooling followed by
broadcast addition, multiplication or concatenation, batch / instance norm,
25 non-linearities, linear, dropout and alpha dropout in eval, ``cat``, ``MinkowskiUnion``,
``MinkowskiPruning``
(a coordinate-keyed mask), ``+ - *`` of two tensors on one coordinate key and with a scalar, and
``dense()`` -> ``to_sparse`` round trips (stride 1). An op whose name either engine lacks is left
out of the draw and reported in ``LEFT_OUT``. Not drawn: ops whose input is not a SparseTensor
(TensorField slicing / interpolation, spmm), MinkowskiEngine 0.4-era coordinate arguments, and
``MinkowskiStableInstanceNorm``, which MinkowskiEngine 0.5.4 cannot run (its forward reads the
0.4 attribute ``coords_key``). Pooling transpose is drawn only onto a coordinate set that a
strided layer made from a finer default-keyed one: without that map MinkowskiEngine aborts the
process. At most one ``MinkowskiUnion`` per coordinate manager and stride: MinkowskiEngine 0.5.4
reuses the first union's output map for a second one (wrong coordinates or an IndexError).
Max pooling is drawn only when the input has no tied values (tied maxima route the gradient to
an arbitrary one of them in either engine).

Each seed runs in three steps, so that a crash of MinkowskiEngine (an assertion, or an abort that
ends the process) cannot hide a native failure: (1) the native graph alone, in this process, which
must build and backpropagate; (2) both engines in lock step in a subprocess (this file run as a
script), which reports each MinkowskiEngine call before making it; (3) where MinkowskiEngine raised
or died at op k, both engines again on the first k ops, which must agree. Only then is the seed
skipped, "MinkowskiEngine itself fails on this graph". Which ops apply and which earlier node a
binary op takes is decided on the native side; in lock step MinkowskiEngine must agree (else the
seed fails), so both steps build the same graph.
"""

from __future__ import annotations

import os
import random
import select
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn

import stseg_models.sparse as NATIVE
from stseg_models.testing import minkowski_or_skip

pytestmark = pytest.mark.minkowski

MINK = minkowski_or_skip()

REL = 1e-9  # float64 throughout
MAX_STRIDE = 8
MAX_CHANNELS = 12
CHILD_TIMEOUT_S = 240  # one lock-step run (about a second)


class MinkowskiFailure(Exception):
    """MinkowskiEngine raised while running its side of the graph (not a native failure)."""


@dataclass
class Node:
    nat: Any
    mink: Any
    op: str

    @property
    def channels(self) -> int:
        return int(self.nat.F.shape[1])

    @property
    def stride(self) -> int:
        return int(self.nat.tensor_stride[0])


@dataclass
class Graph:
    rng: random.Random
    dim: int
    lockstep: bool = True  # False: the native side alone (Node.mink is None)
    log: Path | None = None  # progress lines (the subprocess's report if MinkowskiEngine dies)
    applied: int = 0
    nodes: list[Node] = field(default_factory=list)
    layers: list[tuple[nn.Module, nn.Module]] = field(default_factory=list)
    # coordinate keys made by a strided layer from a finer key: MinkowskiEngine's pooling
    # transpose needs that finer map (it aborts the process without one), so only they get it
    strided: set[tuple[str, int, str]] = field(default_factory=set)
    # (manager, stride) pairs that already hold a union: see op_union
    unions: set[tuple[int, int]] = field(default_factory=set)

    def sides(self) -> tuple[str, ...]:
        return ("nat", "mink") if self.lockstep else ("nat",)

    def progress(self, line: str) -> None:
        if self.log is not None:
            with self.log.open("a") as f:  # closed (written through) before the call it announces
                f.write(line + "\n")

    def call_mink(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one MinkowskiEngine call, announced first; its exceptions are MinkowskiFailure."""
        self.progress(f"MinkowskiEngine op {self.applied}: {what}")
        try:
            return fn()
        except Exception as exc:
            raise MinkowskiFailure(f"op {self.applied} ({what}): {exc!r}") from exc

    def pair(self, name: str, nat: Callable[[], Any], mink: Callable[[], Any]) -> Node:
        """A node of both engines (of the native one alone outside lock step), native first."""
        self.progress(f"native op {self.applied}: {name}")  # a death after this line is native's
        y = nat()
        return Node(y, self.call_mink(name, mink) if self.lockstep else None, name)

    def agree(self, what: str, values: list[Any]) -> Any:
        """The native side's answer; in lock step MinkowskiEngine's must be the same."""
        if any(v != values[0] for v in values[1:]):
            raise AssertionError(
                f"the engines disagree on {what}: native {values[0]}, ME {values[1]}"
            )
        return values[0]

    def mark_strided(self, node: Node) -> None:
        for side in self.sides():
            self.strided.add((side, *key_id(getattr(node, side))))

    def has_finer(self, node: Node) -> bool:
        """A finer map that MinkowskiEngine's transposed layers would use exists (see `strided`).

        MinkowskiEngine writes a transposed layer's output onto the map keyed (finer stride, "")
        whatever the input key's string id; only default-keyed inputs are safe to draw.
        """
        return self.agree(
            "whether a finer default-keyed map exists",
            [
                (side, *key_id(t := getattr(node, side))) in self.strided
                and ":" not in str(t.coordinate_map_key).split("]")[-1]
                for side in self.sides()
            ],
        )

    def layer(self, build: Callable[[ModuleType], nn.Module]) -> tuple[nn.Module, Any]:
        """The same layer in both engines, MinkowskiEngine's with the native weights."""
        torch.manual_seed(self.rng.randrange(10**6))
        nat = build(NATIVE).double()
        with torch.no_grad():  # norms start at weight 1, bias 0: move them off the kinks of a ReLU
            for name, p in nat.named_parameters():
                if "bn." in name or "inst_norm" in name or type(nat).__name__.endswith("Norm"):
                    p.uniform_(0.2, 0.8) if name.endswith("bias") else p.uniform_(0.5, 1.5)
        mink = None
        if self.lockstep:

            def make() -> nn.Module:
                m = build(MINK).double()
                m.load_state_dict(nat.state_dict())
                return m

            mink = self.call_mink(f"build {type(nat).__name__}", make)
        for m in (nat, mink):
            if m is None:
                continue
            m.train()
            if "Dropout" in type(m).__name__ or "RReLU" in type(m).__name__:
                m.eval()
        self.layers.append((nat, mink))
        return nat, mink

    def unary(self, name: str, build: Callable[[ModuleType], nn.Module], x: Node) -> Node:
        nat, mink = self.layer(build)
        return self.pair(name, lambda: nat(x.nat), lambda: mink(x.mink))

    def earlier(self, x: Node, fits: Callable[[Node, str], bool]) -> Node | None:
        """A random earlier node (not `x`) for which `fits` holds (in both engines: `agree`)."""
        options = [
            [i for i, n in enumerate(self.nodes) if n is not x and fits(n, side)]
            for side in self.sides()
        ]
        rows = self.agree("which earlier nodes fit a binary op", options)
        return self.nodes[self.rng.choice(rows)] if rows else None


def key_id(t: Any) -> tuple[int, str]:
    return id(t.coordinate_manager), str(t.coordinate_map_key)


def same_key(a: Node, b: Node, side: str) -> bool:
    return same_manager(a, b, side) and (
        getattr(a, side).coordinate_map_key == getattr(b, side).coordinate_map_key
    )


def same_manager(a: Node, b: Node, side: str) -> bool:
    return getattr(a, side).coordinate_manager is getattr(b, side).coordinate_manager


def keep_mask(t: Any, salt: int) -> torch.Tensor:
    """A pruning mask that depends on each row's coordinate (so it is the same in both engines)."""
    c = t.C.long()
    weights = torch.tensor([7, 13, 29, 31, 37, 41][: c.shape[1]])
    keep = ((c * weights).sum(1) + salt) % 3 != 0
    if not keep.any():  # keep the smallest coordinate (not row 0: the engines order rows apart)
        rows = c.tolist()
        keep[min(range(len(rows)), key=lambda r: rows[r])] = True
    return keep


# --- the ops: each returns the new node, or None when it does not apply to `x` -----------------


def op_conv(g: Graph, x: Node) -> Node | None:
    k, s, d = g.rng.choice([1, 2, 3]), g.rng.choice([1, 2]), g.rng.choice([1, 2])
    if x.stride * s > MAX_STRIDE:
        s = 1
    cout, bias = g.rng.randint(2, 6), g.rng.random() < 0.5
    return g.unary(
        f"conv k{k} s{s} d{d}",
        lambda me: me.MinkowskiConvolution(
            x.channels, cout, k, stride=s, dilation=d, bias=bias, dimension=g.dim
        ),
        x,
    )


def op_conv_transpose(g: Graph, x: Node) -> Node | None:
    if x.stride == 1:
        return None
    k, cout = g.rng.choice([2, 3]), g.rng.randint(2, 6)
    return g.unary(
        f"convtr k{k}",
        lambda me: me.MinkowskiConvolutionTranspose(x.channels, cout, k, stride=2, dimension=g.dim),
        x,
    )


def op_generative(g: Graph, x: Node) -> Node | None:
    if x.stride == 1 or len(x.nat) > 400:
        return None
    k = g.rng.choice([2, 3])
    return g.unary(
        f"generative k{k}",
        lambda me: me.MinkowskiGenerativeConvolutionTranspose(
            x.channels, 3, k, stride=2, dimension=g.dim
        ),
        x,
    )


def op_channelwise(g: Graph, x: Node) -> Node | None:
    k = g.rng.choice([2, 3])
    return g.unary(
        f"channelwise k{k}",
        lambda me: me.MinkowskiChannelwiseConvolution(
            x.channels, kernel_size=k, bias=True, dimension=g.dim
        ),
        x,
    )


def op_pool(g: Graph, x: Node) -> Node | None:
    kind = g.rng.choice(["Max", "Avg", "Sum"])
    if kind == "Max" and x.nat.F.unique().numel() != x.nat.F.numel():
        kind = "Avg"
    k, s = g.rng.choice([2, 3]), g.rng.choice([1, 2])
    if x.stride * s > MAX_STRIDE:
        s = 1
    y = g.unary(
        f"{kind}Pool k{k} s{s}",
        lambda me: getattr(me, f"Minkowski{kind}Pooling")(kernel_size=k, stride=s, dimension=g.dim),
        x,
    )
    if s > 1:
        g.mark_strided(y)
    return y


def op_pool_transpose(g: Graph, x: Node) -> Node | None:
    if x.stride == 1 or not g.has_finer(x):
        return None
    return g.unary(
        "PoolTranspose k2",
        lambda me: me.MinkowskiPoolingTranspose(kernel_size=2, stride=2, dimension=g.dim),
        x,
    )


def op_global_broadcast(g: Graph, x: Node) -> Node | None:
    kind = g.rng.choice(["Max", "Avg", "Sum", ""])  # "": MinkowskiGlobalPooling (its default mode)
    if kind == "Max" and x.nat.F.unique().numel() != x.nat.F.numel():
        kind = "Avg"
    mode = g.rng.choice(["Addition", "Multiplication", "Concatenation"])
    if mode == "Concatenation" and 2 * x.channels > MAX_CHANNELS:
        mode = "Addition"
    pool = g.layer(lambda me: getattr(me, f"MinkowskiGlobal{kind}Pooling")())
    glob = g.pair(f"Global{kind}", lambda: pool[0](x.nat), lambda: pool[1](x.mink))
    g.nodes.append(glob)
    nat, mink = g.layer(lambda me: getattr(me, f"MinkowskiBroadcast{mode}")())
    return g.pair(f"Broadcast{mode}", lambda: nat(x.nat, glob.nat), lambda: mink(x.mink, glob.mink))


def op_norm(g: Graph, x: Node) -> Node | None:
    kind = g.rng.choice(["BatchNorm", "InstanceNorm"])
    if kind != "BatchNorm" and len(x.nat) < 2 * 4:  # per-instance statistics need a few rows
        kind = "BatchNorm"
    return g.unary(kind, lambda me: getattr(me, f"Minkowski{kind}")(x.channels), x)


# name -> constructor arguments; RReLU runs in eval (its training slopes are random)
NONLINEAR: dict[str, dict[str, Any]] = {
    "MinkowskiReLU": {}, "MinkowskiELU": {}, "MinkowskiLeakyReLU": {}, "MinkowskiSigmoid": {},
    "MinkowskiTanh": {}, "MinkowskiGELU": {}, "MinkowskiSiLU": {}, "MinkowskiSoftplus": {},
    "MinkowskiCELU": {}, "MinkowskiSELU": {}, "MinkowskiReLU6": {}, "MinkowskiPReLU": {},
    "MinkowskiRReLU": {}, "MinkowskiHardshrink": {}, "MinkowskiHardsigmoid": {},
    "MinkowskiHardtanh": {}, "MinkowskiHardswish": {}, "MinkowskiLogSigmoid": {},
    "MinkowskiSoftshrink": {}, "MinkowskiSoftsign": {}, "MinkowskiTanhshrink": {},
    "MinkowskiThreshold": {"threshold": 0.1, "value": -0.5}, "MinkowskiSoftmax": {"dim": 1},
    "MinkowskiSoftmin": {"dim": 1}, "MinkowskiLogSoftmax": {"dim": 1},
}  # fmt: skip


def op_nonlinearity(g: Graph, x: Node) -> Node | None:
    kind = g.rng.choice(sorted(NONLINEAR))
    return g.unary(
        kind.removeprefix("Minkowski"), lambda me: getattr(me, kind)(**NONLINEAR[kind]), x
    )


def op_linear(g: Graph, x: Node) -> Node | None:
    cout = g.rng.randint(2, 6)
    return g.unary("Linear", lambda me: me.MinkowskiLinear(x.channels, cout, bias=True), x)


def op_dropout_eval(g: Graph, x: Node) -> Node | None:
    kind = g.rng.choice(["MinkowskiDropout", "MinkowskiAlphaDropout"])
    return g.unary(f"{kind.removeprefix('Minkowski')}(eval)", lambda me: getattr(me, kind)(), x)


def op_cat(g: Graph, x: Node) -> Node | None:
    other = g.earlier(
        x, lambda n, side: same_key(n, x, side) and n.channels + x.channels <= MAX_CHANNELS
    )
    if other is None:
        return None
    return g.pair(
        f"cat({other.op})",
        lambda: NATIVE.cat(x.nat, other.nat),
        lambda: MINK.cat(x.mink, other.mink),
    )


def op_union(g: Graph, x: Node) -> Node | None:
    other = g.earlier(
        x,
        lambda n, side: (
            same_manager(n, x, side)
            and n.stride == x.stride
            and n.channels == x.channels
            and not same_key(n, x, side)
        ),
    )
    # MinkowskiEngine 0.5.4 gives a second union at the same stride in one manager the first
    # union's output map (wrong coordinates, or an IndexError): one union per manager and stride
    slot = (id(x.nat.coordinate_manager), x.stride)
    if other is None or slot in g.unions:
        return None
    g.unions.add(slot)
    nat, mink = g.layer(lambda me: me.MinkowskiUnion())
    return g.pair(
        f"union({other.op})", lambda: nat(x.nat, other.nat), lambda: mink(x.mink, other.mink)
    )


def op_pruning(g: Graph, x: Node) -> Node | None:
    if len(x.nat) < 4:
        return None
    salt = g.rng.randrange(3)
    nat, mink = g.layer(lambda me: me.MinkowskiPruning())
    return g.pair(
        "Pruning",
        lambda: nat(x.nat, keep_mask(x.nat, salt)),
        lambda: mink(x.mink, keep_mask(x.mink, salt)),
    )


def op_arithmetic(g: Graph, x: Node) -> Node | None:
    sym = g.rng.choice(["+", "-", "*"])
    fn: Callable[[Any, Any], Any] = {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
    }[sym]
    other = g.earlier(x, lambda n, side: same_key(n, x, side) and n.channels == x.channels)
    if other is None or g.rng.random() < 0.3:
        # a 0-d tensor: MinkowskiEngine's operators take a SparseTensor or a torch.Tensor only
        scalar = torch.tensor(g.rng.uniform(0.5, 2.0), dtype=torch.float64)
        return g.pair(
            f"{sym} {float(scalar):.2f}", lambda: fn(x.nat, scalar), lambda: fn(x.mink, scalar)
        )
    return g.pair(f"{sym} {other.op}", lambda: fn(x.nat, other.nat), lambda: fn(x.mink, other.mink))


def op_dense_round_trip(g: Graph, x: Node) -> Node | None:
    if x.stride != 1 or len(x.nat) > 600:
        return None

    def round_trip(me: ModuleType, t: Any) -> Any:
        dense, _, _ = t.dense()
        return me.to_sparse(dense)

    return g.pair(
        "dense->to_sparse", lambda: round_trip(NATIVE, x.nat), lambda: round_trip(MINK, x.mink)
    )


OPS: dict[str, tuple[Callable[[Graph, Node], Node | None], tuple[str, ...]]] = {
    "conv": (op_conv, ("MinkowskiConvolution",)),
    "conv_transpose": (op_conv_transpose, ("MinkowskiConvolutionTranspose",)),
    "generative": (op_generative, ("MinkowskiGenerativeConvolutionTranspose",)),
    "channelwise": (op_channelwise, ("MinkowskiChannelwiseConvolution",)),
    "pool": (op_pool, ("MinkowskiMaxPooling", "MinkowskiAvgPooling", "MinkowskiSumPooling")),
    "pool_transpose": (op_pool_transpose, ("MinkowskiPoolingTranspose",)),
    "global_broadcast": (
        op_global_broadcast,
        (
            "MinkowskiGlobalMaxPooling",
            "MinkowskiGlobalAvgPooling",
            "MinkowskiGlobalSumPooling",
            "MinkowskiGlobalPooling",
            "MinkowskiBroadcastAddition",
            "MinkowskiBroadcastMultiplication",
            "MinkowskiBroadcastConcatenation",
        ),
    ),
    "norm": (
        op_norm,
        ("MinkowskiBatchNorm", "MinkowskiInstanceNorm"),
    ),
    "nonlinearity": (op_nonlinearity, tuple(NONLINEAR)),
    "linear": (op_linear, ("MinkowskiLinear",)),
    "dropout_eval": (op_dropout_eval, ("MinkowskiDropout", "MinkowskiAlphaDropout")),
    "cat": (op_cat, ("cat",)),
    "union": (op_union, ("MinkowskiUnion",)),
    "pruning": (op_pruning, ("MinkowskiPruning",)),
    "arithmetic": (op_arithmetic, ("SparseTensor",)),
    "dense_round_trip": (op_dense_round_trip, ("to_sparse",)),
}
AVAILABLE = {
    k: fn
    for k, (fn, names) in OPS.items()
    if all(hasattr(NATIVE, n) and hasattr(MINK, n) for n in names)
}
LEFT_OUT = sorted(set(OPS) - set(AVAILABLE))


# --- building and comparing ----------------------------------------------------------------------


def random_input(dim: int, seed: int, n: int = 250, extent: int = 10, channels: int = 3):
    g = torch.Generator().manual_seed(seed)
    c = torch.cat(
        [torch.randint(0, 2, (n, 1), generator=g), torch.randint(0, extent, (n, dim), generator=g)],
        1,
    )
    c = torch.unique(c, dim=0).int()
    return c, torch.randn(len(c), channels, generator=g, dtype=torch.float64)


def build_graph(
    dim: int, seed: int, length: int = 20, lockstep: bool = True, log: Path | None = None
) -> tuple[Graph, torch.Tensor, torch.Tensor | None]:
    coords, feats = random_input(dim, seed)
    fn_, fm = feats.clone().requires_grad_(True), feats.clone().requires_grad_(True)
    g = Graph(random.Random(seed), dim, lockstep, log)
    x = g.pair(
        "input", lambda: NATIVE.SparseTensor(fn_, coords), lambda: MINK.SparseTensor(fm, coords)
    )
    g.nodes.append(x)
    while g.applied < length:
        name = g.rng.choice(sorted(AVAILABLE))
        try:
            y = AVAILABLE[name](g, x)
        except MinkowskiFailure:
            raise
        except Exception as exc:  # name the step that failed, with the graph so far
            trail = " -> ".join(n.op for n in g.nodes)
            raise AssertionError(
                f"seed {seed} D={dim}: op {name} after [{trail}] raised {exc!r}"
            ) from exc
        if y is None or len(y.nat) == 0:
            continue
        g.nodes.append(y)
        x, g.applied = y, g.applied + 1
    return g, fn_, fm if lockstep else None


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12)) if b.numel() else 0.0


def probe(coords: torch.Tensor, channels: int) -> torch.Tensor:
    """Loss weights that depend on a row's coordinate, not on its position."""
    c = coords.double()
    gen = torch.Generator().manual_seed(channels)
    return torch.sin(
        c @ torch.randn(c.shape[1], channels, generator=gen, dtype=torch.float64) * 0.3 + 0.1
    )


def trail_of(g: Graph) -> str:
    return " -> ".join(n.op for n in g.nodes)


def native_alone(dim: int, seed: int) -> str:
    """Step 1: the native graph alone builds and backpropagates a nonzero input gradient."""
    g, fn_, _ = build_graph(dim, seed, lockstep=False)
    loss = sum((n.nat.F * probe(n.nat.C, n.nat.F.shape[1])).mean() for n in g.nodes)
    loss.backward()
    assert fn_.grad is not None and bool(fn_.grad.isfinite().all()) and fn_.grad.abs().sum() > 0
    return trail_of(g)


def compare(dim: int, seed: int, length: int = 20, log: Path | None = None) -> str:
    """Both engines in lock step: every node and every gradient agree; returns the trail."""
    g, fn_, fm = build_graph(dim, seed, length, log=log)
    assert fm is not None
    trail = trail_of(g)
    where = f"seed {seed} D={dim} [{trail}]"
    loss_n = loss_m = 0.0
    for i, node in enumerate(g.nodes):
        a, b = node.nat, node.mink
        assert list(a.tensor_stride) == list(b.tensor_stride), f"node {i} {node.op} stride: {where}"
        ca, cb = [tuple(r) for r in a.C.tolist()], [tuple(r) for r in b.C.tolist()]
        assert len(set(ca)) == len(ca) and set(ca) == set(cb), (
            f"node {i} {node.op}: coordinate sets differ ({len(set(ca) - set(cb))} only native, "
            f"{len(set(cb) - set(ca))} only MinkowskiEngine): {where}"
        )
        rows = {c: r for r, c in enumerate(cb)}
        order = torch.tensor([rows[c] for c in ca], dtype=torch.long)
        err = rel_err(a.F.detach(), b.F.detach()[order])
        assert err < REL, f"node {i} {node.op}: features differ by {err:.2e}: {where}"
        loss_n = loss_n + (a.F * probe(a.C, a.F.shape[1])).mean()
        loss_m = loss_m + (b.F * probe(b.C, b.F.shape[1])).mean()
    g.progress(f"forward of {len(g.nodes)} nodes agrees; native backward")
    loss_n.backward()
    g.call_mink("backward", loss_m.backward)
    assert rel_err(fn_.grad, fm.grad) < REL, (
        f"input gradient differs by {rel_err(fn_.grad, fm.grad):.2e}: {where}"
    )
    assert fn_.grad.abs().sum() > 0
    for i, (ln, lm) in enumerate(g.layers):
        pm = dict(lm.named_parameters())
        for name, p in ln.named_parameters():
            q = pm[name]
            assert (p.grad is None) == (q.grad is None), (
                f"layer {i} {type(ln).__name__}.{name}: {where}"
            )
            if p.grad is not None:
                err = rel_err(p.grad, q.grad)
                assert err < REL, (
                    f"layer {i} {type(ln).__name__}.{name} gradient {err:.2e}: {where}"
                )
    return trail


def test_every_op_kind_is_drawn() -> None:
    """Both engines have every op of the draw (a missing name would silently shrink the graphs)."""
    assert LEFT_OUT == [], f"ops left out of the random graphs (a name is missing): {LEFT_OUT}"


class LockstepWorker:
    """One subprocess (this file run as a script) running lock-step comparisons one after another.

    It is started again after a run that did not end "ok" (MinkowskiEngine may have died, or be in
    a bad state after raising). Requests and answers go through its stdin and a copy of its stdout
    (its own stdout goes to its stderr, so prints cannot garble them); stderr goes to a file.
    """

    def __init__(self, folder: Path) -> None:
        self.folder, self.proc, self.runs = folder, None, 0
        self.stderr = folder / "stderr.txt"

    def _start(self) -> subprocess.Popen:
        err = self.stderr.open("w")
        proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        err.close()
        return proc

    def run(self, dim: int, seed: int, length: int) -> tuple[int | None, list[str], str]:
        """(exit status if the process died else None, its progress lines, its stderr's tail)."""
        if self.proc is None:
            self.proc = self._start()
        self.runs += 1
        log = self.folder / f"run{self.runs}.txt"
        log.touch()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(f"{dim} {seed} {length} {log}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        ready, _, _ = select.select([self.proc.stdout], [], [], CHILD_TIMEOUT_S)
        answer = self.proc.stdout.readline() if ready else ""
        lines = log.read_text().splitlines()
        if answer.startswith("done") and lines and lines[-1].startswith("RESULT ok "):
            return None, lines, ""
        if not ready:
            self.proc.kill()
        rc = self.proc.wait(timeout=60) if not answer else None
        if answer:  # alive, but ME raised or the comparison failed: start afresh next time
            self.close()
        self.proc = None
        tail = self.stderr.read_text()[-3000:] if self.stderr.exists() else ""
        return rc, lines, tail if ready else f"timed out after {CHILD_TIMEOUT_S} s\n{tail}"

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
            self.proc = None


@pytest.fixture(scope="module")
def lockstep() -> Iterator[LockstepWorker]:
    with tempfile.TemporaryDirectory() as tmp:
        worker = LockstepWorker(Path(tmp))
        yield worker
        worker.close()


def check_seed(worker: LockstepWorker, dim: int, seed: int) -> None:
    native_trail = native_alone(dim, seed)  # native must never fail, whatever ME does
    rc, lines, err = worker.run(dim, seed, 20)
    last = lines[-1] if lines else ""
    if last.startswith("RESULT ok "):
        assert last.removeprefix("RESULT ok ") == native_trail, "lock step built another graph"
        return
    if last.startswith("RESULT MinkowskiEngine raised "):
        reason = last.removeprefix("RESULT MinkowskiEngine raised ")
    elif (
        rc is not None
        and rc < 0
        and last.startswith("MinkowskiEngine op ")
        and not err.startswith("timed out")
    ):  # the process died inside a MinkowskiEngine call
        what = err.strip().splitlines()[-1].strip() if err.strip() else "no output"
        reason = f"{last.removeprefix('MinkowskiEngine ')} ended the process (signal {-rc}): {what}"
    else:
        detail = "\n".join(lines[-40:])
        pytest.fail(f"seed {seed} D={dim}: lock-step run failed (exit {rc}):\n{detail}\n{err}")
    failed_at = next(
        int(line.split()[2].rstrip(":"))
        for line in reversed(lines)
        if line.startswith("MinkowskiEngine op ")
    )
    if "backward" not in last and failed_at > 0:  # step 3: the ops before the failing one agree
        _, lines3, err3 = worker.run(dim, seed, failed_at)
        if not (lines3 and lines3[-1].startswith("RESULT ok ")):
            detail = "\n".join(lines3[-40:])
            pytest.fail(
                f"seed {seed} D={dim}: the first {failed_at} ops disagree:\n{detail}\n{err3}"
            )
        assert native_trail.startswith(lines3[-1].removeprefix("RESULT ok "))
    pytest.skip(f"MinkowskiEngine itself fails on this graph: {reason}")


SEEDS_3D = range(20)
SEEDS_4D = range(100, 110)


@pytest.mark.me_names(
    "MinkowskiAlphaDropout",
    "MinkowskiAvgPooling",
    "MinkowskiBatchNorm",
    "MinkowskiBroadcastAddition",
    "MinkowskiBroadcastConcatenation",
    "MinkowskiBroadcastMultiplication",
    "MinkowskiCELU",
    "MinkowskiChannelwiseConvolution",
    "MinkowskiConvolution",
    "MinkowskiConvolutionTranspose",
    "MinkowskiDropout",
    "MinkowskiGELU",
    "MinkowskiGenerativeConvolutionTranspose",
    "MinkowskiGlobalAvgPooling",
    "MinkowskiGlobalMaxPooling",
    "MinkowskiGlobalPooling",
    "MinkowskiGlobalSumPooling",
    "MinkowskiHardshrink",
    "MinkowskiHardsigmoid",
    "MinkowskiHardswish",
    "MinkowskiHardtanh",
    "MinkowskiInstanceNorm",
    "MinkowskiLeakyReLU",
    "MinkowskiLinear",
    "MinkowskiMaxPooling",
    "MinkowskiPoolingTranspose",
    "MinkowskiPruning",
    "MinkowskiRReLU",
    "MinkowskiReLU",
    "MinkowskiSELU",
    "MinkowskiSigmoid",
    "MinkowskiSoftmax",
    "MinkowskiSoftplus",
    "MinkowskiSoftshrink",
    "MinkowskiSoftsign",
    "MinkowskiSumPooling",
    "MinkowskiTanh",
    "MinkowskiUnion",
    "SparseTensor",
    "cat",
    "to_sparse",
)
@pytest.mark.parametrize("seed", SEEDS_3D)
def test_random_graph_3d(lockstep: LockstepWorker, seed: int) -> None:
    check_seed(lockstep, 3, seed)


@pytest.mark.me_names(
    "MinkowskiAlphaDropout",
    "MinkowskiAvgPooling",
    "MinkowskiBatchNorm",
    "MinkowskiBroadcastAddition",
    "MinkowskiBroadcastConcatenation",
    "MinkowskiBroadcastMultiplication",
    "MinkowskiChannelwiseConvolution",
    "MinkowskiConvolution",
    "MinkowskiConvolutionTranspose",
    "MinkowskiDropout",
    "MinkowskiGELU",
    "MinkowskiGenerativeConvolutionTranspose",
    "MinkowskiGlobalAvgPooling",
    "MinkowskiGlobalMaxPooling",
    "MinkowskiGlobalPooling",
    "MinkowskiGlobalSumPooling",
    "MinkowskiHardshrink",
    "MinkowskiHardtanh",
    "MinkowskiInstanceNorm",
    "MinkowskiLeakyReLU",
    "MinkowskiLinear",
    "MinkowskiLogSigmoid",
    "MinkowskiMaxPooling",
    "MinkowskiPruning",
    "MinkowskiSoftmax",
    "MinkowskiSoftshrink",
    "MinkowskiSumPooling",
    "MinkowskiThreshold",
    "MinkowskiUnion",
    "SparseTensor",
    "cat",
    "to_sparse",
)
@pytest.mark.parametrize("seed", SEEDS_4D)
def test_random_graph_4d(lockstep: LockstepWorker, seed: int) -> None:
    check_seed(lockstep, 4, seed)


def lockstep_one(dim: int, seed: int, length: int, log: Path) -> None:
    """Compare one seed; the last line of `log` says how it ended (a traceback before it)."""
    try:
        trail = compare(dim, seed, length, log)
        result = f"RESULT ok {trail}"
    except MinkowskiFailure as exc:
        result = f"RESULT MinkowskiEngine raised {exc}"
    except Exception:
        result = traceback.format_exc() + "RESULT failed"
    head, _, last = result.rpartition("RESULT")
    with log.open("a") as f:
        f.write(head + "RESULT" + last.replace("\n", " ").rstrip() + "\n")


def worker_main() -> None:
    """Subprocess loop: one request "dim seed length log" a line, answered "done" a line."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the engines print goes to stderr
    for request in sys.stdin:
        dim, seed, length, log = request.split()
        lockstep_one(int(dim), int(seed), int(length), Path(log))
        answers.write("done\n")


if __name__ == "__main__":
    worker_main()
