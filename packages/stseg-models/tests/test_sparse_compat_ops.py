"""Native ops == MinkowskiEngine 0.5.4 (values, coordinates, gradients); `nox -s compat`.

Union, pruning, broadcast, channelwise convolution, instance norms, sinusoidal, stacks and
reductions, conversions, MinkowskiFunctional, the *Function classes, spmm and the residual / SE
blocks, in 3D and 4D where the op has coordinates. Weights are copied from the native layer
into MinkowskiEngine's. Output rows are matched by coordinate: MinkowskiEngine lists union and
pruning outputs in its hash map's order (unspecified), the native engine in first-occurrence
order, so coordinates are compared as sets; conversions from dense tensors have a defined
row-major order, compared row for row. Gradients are taken w.r.t. the user's feature tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import stseg_models.sparse as NATIVE
from stseg_models.testing import minkowski_or_skip

pytestmark = pytest.mark.minkowski

MINK = minkowski_or_skip()

REL = 1e-5
ENGINES = (("native", NATIVE), ("mink", MINK))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12)) if b.numel() else 0.0


def keys_at(manager: Any, stride: list[int]) -> list[Any]:
    """Coordinate keys of a manager at one tensor stride (MinkowskiEngine: on its C++ manager)."""
    inner = getattr(manager, "_manager", manager)
    try:
        return list(inner.get_coordinate_map_keys(stride))
    except TypeError:  # the native manager lists every key
        return [k for k in inner.get_coordinate_map_keys() if list(k.tensor_stride) == stride]


def rows(coords: torch.Tensor) -> list[tuple[int, ...]]:
    return [tuple(r) for r in coords.tolist()]


def align(native_c: torch.Tensor, mink_c: torch.Tensor) -> torch.Tensor:
    """Index of the MinkowskiEngine row for each native row; the coordinate sets must be equal."""
    table = {c: i for i, c in enumerate(rows(mink_c))}
    assert len(table) == len(native_c) and set(table) == set(rows(native_c))
    return torch.tensor([table[c] for c in rows(native_c)], dtype=torch.long)


def random_input(
    dim: int, channels: int, seed: int, n: int = 200, extent: int = 7
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    coords = torch.cat(
        [torch.randint(0, 2, (n, 1), generator=g), torch.randint(0, extent, (n, dim), generator=g)],
        1,
    )
    coords = torch.unique(coords, dim=0).int()
    return coords, torch.randn(len(coords), channels, generator=g)


def compare(outs: dict[str, Any], leaves: dict[str, list[torch.Tensor]], seed: int = 0) -> None:
    """Outputs (SparseTensors) equal by coordinate; then the same upstream gradient on both."""
    yn, ym = outs["native"], outs["mink"]
    order = align(yn.C, ym.C)
    assert rel_err(yn.F, ym.F[order]) < REL
    upstream = torch.randn(yn.F.shape, generator=torch.Generator().manual_seed(seed)).to(yn.F.dtype)
    yn.F.backward(upstream)
    grad_m = torch.zeros_like(ym.F)
    grad_m[order] = upstream
    ym.F.backward(grad_m)
    for ln, lm in zip(leaves["native"], leaves["mink"], strict=True):
        assert ln.grad is not None and lm.grad is not None
        assert rel_err(ln.grad, lm.grad) < REL


def compare_params(layers: dict[str, torch.nn.Module]) -> None:
    for (name, pn), (_, pm) in zip(
        layers["native"].named_parameters(), layers["mink"].named_parameters(), strict=True
    ):
        assert pn.grad is not None and pm.grad is not None, name
        assert rel_err(pn.grad, pm.grad) < REL, name


def run_layer(
    build: Callable[[Any], torch.nn.Module],
    dim: int,
    channels: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> None:
    """One-input layer in both engines with the native weights; outputs and all gradients.

    Deep blocks run in float64: their float32 parameter gradients sum thousands of rows in
    engine-specific orders, which alone differs by ~1e-5 relative.
    """
    coords, feats = random_input(dim, channels, seed)
    feats = feats.to(dtype)
    layers = {"native": build(NATIVE).to(dtype), "mink": build(MINK).to(dtype)}
    layers["mink"].load_state_dict(layers["native"].state_dict())
    outs, leaves = {}, {}
    for name, me in ENGINES:
        f = feats.clone().requires_grad_(True)
        outs[name], leaves[name] = layers[name](me.SparseTensor(f, coords)), [f]
    compare(outs, leaves, seed)
    compare_params(layers)


# -- union and pruning ---------------------------------------------------------------------------
@pytest.mark.me_names("MinkowskiUnion")
@pytest.mark.parametrize(("dim", "count"), [(3, 2), (3, 3), (4, 2)])
def test_union(dim: int, count: int) -> None:
    inputs = [random_input(dim, 3, seed=dim + i, n=150) for i in range(count)]
    outs, leaves = {}, {}
    for name, me in ENGINES:
        tensors, fs = [], []
        for coords, feats in inputs:
            f = feats.clone().requires_grad_(True)
            manager = tensors[0].coordinate_manager if tensors else None
            tensors.append(me.SparseTensor(f, coords, coordinate_manager=manager))
            fs.append(f)
        outs[name], leaves[name] = me.MinkowskiUnion()(*tensors), fs
    assert outs["native"].tensor_stride == outs["mink"].tensor_stride == [1] * dim
    assert str(outs["native"].coordinate_map_key.string_id) in str(outs["mink"].coordinate_map_key)
    compare(outs, leaves)


@pytest.mark.me_names("MinkowskiPruning")
@pytest.mark.parametrize("dim", [3, 4])
def test_pruning(dim: int) -> None:
    coords, feats = random_input(dim, 3, seed=dim)
    outs, leaves = {}, {}
    for name, me in ENGINES:
        f = feats.clone().requires_grad_(True)
        x = me.MinkowskiConvolution(3, 3, kernel_size=2, stride=2, dimension=dim)
        torch.nn.init.constant_(x.kernel, 0.2)
        y = x(me.SparseTensor(f, coords))
        mask = y.F[:, 0].detach() > float(y.F[:, 0].detach().median())  # a mask by row content
        keys_before = len(keys_at(y.coordinate_manager, y.tensor_stride))
        outs[name], leaves[name] = me.MinkowskiPruning()(y, mask), [f]
        out = outs[name]
        assert out.tensor_stride == [2] * dim and len(out) == int(mask.sum())
        assert out.coordinate_manager is y.coordinate_manager
        assert len(keys_at(y.coordinate_manager, y.tensor_stride)) == keys_before + 1
    compare(outs, leaves)


@pytest.mark.me_names("MinkowskiPruning", "MinkowskiUnion")
def test_layers_after_pruning() -> None:
    """A pruned coarse set feeds a convolution (maps built on the pruned set), a union with its
    parent, and a transposed convolution back onto the full fine set, as MinkowskiEngine's."""

    class Net(torch.nn.Module):
        def __init__(self, me: Any) -> None:
            super().__init__()
            self.me = me
            self.down = me.MinkowskiConvolution(3, 4, kernel_size=2, stride=2, dimension=3)
            self.mid = me.MinkowskiConvolution(4, 4, kernel_size=3, dimension=3)
            self.up = me.MinkowskiConvolutionTranspose(4, 2, kernel_size=2, stride=2, dimension=3)

        def forward(self, x: Any) -> Any:
            y = self.down(x)
            pruned = self.me.MinkowskiPruning()(y, y.F[:, 0].detach() > 0)
            merged = self.me.MinkowskiUnion()(y, self.mid(pruned))
            return self.up(merged)

    run_layer(Net, 3, 3, seed=11, dtype=torch.float64)


# -- broadcast -----------------------------------------------------------------------------------
@pytest.mark.me_names(
    "MinkowskiBroadcastAddition",
    "MinkowskiBroadcastMultiplication",
    "MinkowskiBroadcast",
    "MinkowskiBroadcastConcatenation",
)
@pytest.mark.parametrize("dim", [3, 4])
@pytest.mark.parametrize(
    "layer",
    [
        "MinkowskiBroadcastAddition",
        "MinkowskiBroadcastMultiplication",
        "MinkowskiBroadcast",
        "MinkowskiBroadcastConcatenation",
    ],
)
def test_broadcast(dim: int, layer: str) -> None:
    coords, feats = random_input(dim, 3, seed=dim)
    outs, leaves = {}, {}
    for name, me in ENGINES:
        f = feats.clone().requires_grad_(True)
        x = me.SparseTensor(f, coords)
        glob = me.MinkowskiGlobalMaxPooling()(me.MinkowskiReLU()(x))
        outs[name], leaves[name] = getattr(me, layer)()(x, glob), [f]
    compare(outs, leaves)


@pytest.mark.me_names("MinkowskiBroadcastFunction", "BroadcastMode")
def test_broadcast_function() -> None:
    coords, feats = random_input(3, 3, seed=5)
    for mode in ("ELEMENTWISE_ADDITON", "ELEMENTWISE_MULTIPLICATION"):
        outs, leaves = {}, {}
        for name, me in ENGINES:
            f = feats.clone().requires_grad_(True)
            x = me.SparseTensor(f, coords)
            g = me.MinkowskiGlobalAvgPooling()(x)
            out = me.MinkowskiBroadcastFunction.apply(
                x.F, g.F, getattr(me.BroadcastMode, mode), x.coordinate_map_key,
                g.coordinate_map_key, x.coordinate_manager,
            )  # fmt: skip
            outs[name], leaves[name] = (
                x._with(out)
                if name == "native"
                else me.SparseTensor(
                    out,
                    coordinate_map_key=x.coordinate_map_key,
                    coordinate_manager=x.coordinate_manager,
                ),
                [f],
            )
        compare(outs, leaves)


# -- channelwise convolution, norms, sinusoidal -------------------------------------------------
@pytest.mark.me_names("MinkowskiChannelwiseConvolution")
@pytest.mark.parametrize(
    ("dim", "k", "stride", "dilation"),
    [(3, 3, 1, 1), (3, 2, 2, 1), (3, 3, 2, 1), (3, 3, 1, 2), (4, 3, 1, 1), (4, 2, 2, 1)],
)
def test_channelwise_convolution(dim: int, k: int, stride: int, dilation: int) -> None:
    run_layer(
        lambda me: me.MinkowskiChannelwiseConvolution(
            4, kernel_size=k, stride=stride, dilation=dilation, bias=True, dimension=dim
        ),
        dim,
        4,
        seed=k + stride,
    )


@pytest.mark.me_names("MinkowskiStableInstanceNorm")
def test_stable_instance_norm_matches_instance_norm() -> None:
    """MinkowskiEngine 0.5.4's MinkowskiStableInstanceNorm.forward raises (it reads the 0.4
    attribute ``coords_key``), so its parameters are compared and its output with
    MinkowskiEngine's MinkowskiInstanceNorm (eps 1e-8 there, 1e-6 here: below REL at unit variance)."""
    native, mink = NATIVE.MinkowskiStableInstanceNorm(3), MINK.MinkowskiStableInstanceNorm(3)
    shapes = {k: tuple(v.shape) for k, v in native.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in mink.state_dict().items()}
    with torch.no_grad():
        native.weight.copy_(torch.tensor([[0.5, 2.0, -1.0]]))
        native.bias.copy_(torch.tensor([[0.1, 0.0, 0.3]]))
    reference = MINK.MinkowskiInstanceNorm(3)
    reference.load_state_dict(native.state_dict())
    layers = {"native": native, "mink": reference}
    for dim in (3, 4):
        coords, feats = random_input(dim, 3, seed=dim)
        outs, leaves = {}, {}
        for name, me in ENGINES:
            f = feats.clone().requires_grad_(True)
            outs[name], leaves[name] = layers[name](me.SparseTensor(f, coords)), [f]
        compare(outs, leaves)


@pytest.mark.me_names("MinkowskiInstanceNormFunction")
@pytest.mark.parametrize("dim", [3, 4])
def test_instance_norm_function(dim: int) -> None:
    coords, feats = random_input(dim, 3, seed=dim)
    outs, leaves = {}, {}
    for name, me in ENGINES:
        f = feats.clone().requires_grad_(True)
        x = me.SparseTensor(f, coords)
        out = me.MinkowskiInstanceNormFunction.apply(
            x.F, x.coordinate_map_key, None, x.coordinate_manager
        )
        outs[name] = me.SparseTensor(
            out, coordinate_map_key=x.coordinate_map_key, coordinate_manager=x.coordinate_manager
        )
        leaves[name] = [f]
    compare(outs, leaves)


@pytest.mark.me_names("MinkowskiSinusoidal")
def test_sinusoidal() -> None:
    run_layer(lambda me: me.MinkowskiSinusoidal(3, 5), 3, 3)


# -- stacks, reductions, functional ----------------------------------------------------------------
@pytest.mark.me_names(
    "MinkowskiStackCat", "MinkowskiStackSum", "MinkowskiStackMean", "MinkowskiStackVar"
)
@pytest.mark.parametrize(
    "stack", ["MinkowskiStackCat", "MinkowskiStackSum", "MinkowskiStackMean", "MinkowskiStackVar"]
)
def test_stacks(stack: str) -> None:
    def build(me: Any) -> torch.nn.Module:
        return getattr(me, stack)(
            me.MinkowskiConvolution(3, 4, kernel_size=3, dimension=3),
            torch.nn.Sequential(
                me.MinkowskiConvolution(3, 4, kernel_size=1, bias=True, dimension=3),
                me.MinkowskiReLU(),
            ),
        )

    run_layer(build, 3, 3)


@pytest.mark.me_names("sum", "mean", "var", "cat")
@pytest.mark.parametrize("op", ["sum", "mean", "var", "cat"])
def test_reductions(op: str) -> None:
    class Three(torch.nn.Module):
        def __init__(self, me: Any) -> None:
            super().__init__()
            self.me = me
            self.a = me.MinkowskiLinear(3, 4)
            self.b = me.MinkowskiLinear(3, 4)

        def forward(self, x: Any) -> Any:
            return getattr(self.me, op)(self.a(x), self.b(x), x._with(x.F[:, :1].repeat(1, 4)) if self.me is NATIVE else self.me.SparseTensor(x.F[:, :1].repeat(1, 4), coordinate_map_key=x.coordinate_map_key, coordinate_manager=x.coordinate_manager))  # fmt: skip

    run_layer(Three, 3, 3)


@pytest.mark.me_names("MinkowskiFunctional")
@pytest.mark.parametrize(
    ("fn", "args"),
    [("relu", ()), ("leaky_relu", (0.2,)), ("softmax", (1,)), ("log_softmax", (1,)),
     ("normalize", ()), ("gelu", ()), ("hardswish", ()), ("silu", ())],
)  # fmt: skip
def test_functional(fn: str, args: tuple) -> None:
    class Wrap(torch.nn.Module):
        def __init__(self, me: Any) -> None:
            super().__init__()
            self.me = me
            self.conv = me.MinkowskiConvolution(3, 4, kernel_size=3, dimension=3)

        def forward(self, x: Any) -> Any:
            return getattr(self.me.MinkowskiFunctional, fn)(self.conv(x), *args)

    run_layer(Wrap, 3, 3)


@pytest.mark.me_names("MinkowskiFunctional")
def test_functional_losses() -> None:
    coords, feats = random_input(3, 4, seed=2)
    labels = torch.randint(0, 4, (len(coords),), generator=torch.Generator().manual_seed(1))
    losses, grads = {}, {}
    for name, me in ENGINES:
        f = feats.clone().requires_grad_(True)
        x = me.SparseTensor(f, coords)
        # rows are matched by coordinate: the label belongs to the coordinate
        table = {c: i for i, c in enumerate(rows(coords))}
        target = labels[[table[c] for c in rows(x.C)]]
        loss = me.MinkowskiFunctional.cross_entropy(x, target) + me.MinkowskiFunctional.mse_loss(
            x, torch.zeros_like(x.F)
        )
        loss.backward()
        losses[name], grads[name] = loss, f.grad
    assert rel_err(losses["native"], losses["mink"]) < REL
    assert rel_err(grads["native"], grads["mink"]) < REL


# -- conversions (row-major order defined by MinkowskiEngine) ------------------------------------
@pytest.mark.me_names("dense_coordinates", "to_sparse", "to_sparse_all", "MinkowskiToDenseTensor")
@pytest.mark.parametrize("spatial", [(4, 3, 5), (3, 2, 3, 2)])
def test_dense_conversions(spatial: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(len(spatial))
    shape = torch.Size((2, 3, *spatial))  # MinkowskiEngine's dense() wants a torch.Size
    dense = torch.randn(shape, generator=g) * (torch.rand((2, 1, *spatial), generator=g) < 0.3)
    assert torch.equal(NATIVE.dense_coordinates(shape), MINK.dense_coordinates(shape))
    results = {}
    for name, me in ENGINES:
        d = dense.clone().requires_grad_(True)
        every = me.to_sparse_all(d)
        nonzero = me.to_sparse(d)
        fmt = me.to_sparse(d.movedim(1, -1), format="B" + "X" * len(spatial) + "C")
        back = me.MinkowskiToDenseTensor(shape)(every)
        (back * torch.arange(back.numel()).view(shape)).sum().backward()
        results[name] = (every, nonzero, fmt, back, d.grad)
    for i in range(3):
        n, m = results["native"][i], results["mink"][i]
        assert torch.equal(n.C, m.C)  # same rows in the same order
        assert torch.equal(n.F, m.F)
    assert torch.equal(results["native"][3], results["mink"][3])
    assert torch.equal(results["native"][4], results["mink"][4])


@pytest.mark.me_names("MinkowskiToSparseTensor", "MinkowskiToFeature")
def test_to_sparse_tensor_and_to_feature_modules() -> None:
    g = torch.Generator().manual_seed(0)
    dense = torch.randn(2, 3, 5, 4, 3, generator=g) * (torch.rand(2, 1, 5, 4, 3, generator=g) < 0.4)
    xyz = torch.cat(
        [torch.randint(0, 2, (50, 1), generator=g), torch.rand(50, 3, generator=g) * 4], 1
    )
    field_feats = torch.randn(50, 2, generator=g)
    out = {}
    for name, me in ENGINES:
        s = me.MinkowskiToSparseTensor()(dense)
        from_field = me.MinkowskiToSparseTensor()(me.TensorField(field_feats, xyz))
        out[name] = (s, me.MinkowskiToFeature()(s), from_field)
    assert torch.equal(out["native"][0].C, out["mink"][0].C)
    assert torch.equal(out["native"][1], out["mink"][1])
    fn, fm = out["native"][2], out["mink"][2]
    assert rel_err(fn.F, fm.F[align(fn.C, fm.C)]) < REL


# -- Function classes ----------------------------------------------------------------------------
def _function_case(dim: int, build: Callable[[Any, Any], tuple[Any, Callable[..., Any]]]) -> None:
    """build(me, x) -> (layer output, fn(features) -> features of that output via the Function)."""
    coords, feats = random_input(dim, 3, seed=dim)
    outs, leaves, layers = {}, {}, {}
    for name, me in ENGINES:
        f = feats.clone().requires_grad_(True)
        x = me.SparseTensor(f, coords)
        y, fn = build(me, x)
        layers[name] = y
        out = fn(x.F)
        outs[name] = me.SparseTensor(
            out, coordinate_map_key=y.coordinate_map_key, coordinate_manager=y.coordinate_manager
        )
        leaves[name] = [f]
    compare(outs, leaves)


@pytest.mark.me_names("MinkowskiConvolutionFunction")
@pytest.mark.parametrize(("dim", "k", "stride"), [(3, 3, 1), (3, 3, 2), (4, 2, 2)])
def test_convolution_function(dim: int, k: int, stride: int) -> None:
    weight = torch.randn(k**dim, 3, 4, generator=torch.Generator().manual_seed(0)) * 0.2

    def build(me: Any, x: Any) -> tuple[Any, Callable[..., Any]]:
        conv = me.MinkowskiConvolution(3, 4, kernel_size=k, stride=stride, dimension=dim)
        y = conv(x)
        kernel = weight.clone()
        args = (conv.kernel_generator, getattr(conv, "convolution_mode", None), x.coordinate_map_key, y.coordinate_map_key, x.coordinate_manager)  # fmt: skip
        return y, lambda f: me.MinkowskiConvolutionFunction.apply(f, kernel, *args)

    _function_case(dim, build)


@pytest.mark.me_names("MinkowskiConvolutionTransposeFunction")
@pytest.mark.parametrize("dim", [3, 4])
def test_convolution_transpose_function(dim: int) -> None:
    weight = torch.randn(2**dim, 3, 4, generator=torch.Generator().manual_seed(0)) * 0.2

    def build(me: Any, x: Any) -> tuple[Any, Callable[..., Any]]:
        pool = me.MinkowskiAvgPooling(kernel_size=2, stride=2, dimension=dim)
        up = me.MinkowskiConvolutionTranspose(3, 4, kernel_size=2, stride=2, dimension=dim)
        y = up(pool(x))

        def fn(f: torch.Tensor) -> torch.Tensor:
            coarse = pool(me.SparseTensor(f, coordinate_map_key=x.coordinate_map_key, coordinate_manager=x.coordinate_manager))  # fmt: skip
            return me.MinkowskiConvolutionTransposeFunction.apply(
                coarse.F, weight, up.kernel_generator, getattr(up, "convolution_mode", None),
                coarse.coordinate_map_key, y.coordinate_map_key, x.coordinate_manager,
            )  # fmt: skip

        return y, fn

    _function_case(dim, build)


@pytest.mark.me_names("MinkowskiLocalPoolingFunction", "PoolingMode")
@pytest.mark.parametrize("kind", ["LOCAL_MAX_POOLING", "LOCAL_AVG_POOLING", "LOCAL_SUM_POOLING"])
@pytest.mark.parametrize(("dim", "k", "stride"), [(3, 3, 2), (4, 2, 2)])
def test_local_pooling_function(kind: str, dim: int, k: int, stride: int) -> None:
    def build(me: Any, x: Any) -> tuple[Any, Callable[..., Any]]:
        pool = me.MinkowskiSumPooling(kernel_size=k, stride=stride, dimension=dim)
        y = pool(x)
        args = (getattr(me.PoolingMode, kind), pool.kernel_generator, x.coordinate_map_key, y.coordinate_map_key, x.coordinate_manager)  # fmt: skip
        return y, lambda f: me.MinkowskiLocalPoolingFunction.apply(f, *args)

    _function_case(dim, build)


@pytest.mark.me_names("MinkowskiLocalPoolingTransposeFunction", "PoolingMode")
@pytest.mark.parametrize("kind", ["LOCAL_AVG_POOLING", "LOCAL_SUM_POOLING"])
@pytest.mark.parametrize("dim", [3, 4])
def test_local_pooling_transpose_function(kind: str, dim: int) -> None:
    def build(me: Any, x: Any) -> tuple[Any, Callable[..., Any]]:
        pool = me.MinkowskiMaxPooling(kernel_size=2, stride=2, dimension=dim)
        unpool = me.MinkowskiPoolingTranspose(kernel_size=2, stride=2, dimension=dim)
        coarse = pool(x)
        y = unpool(coarse)

        def fn(f: torch.Tensor) -> torch.Tensor:
            c = pool(me.SparseTensor(f, coordinate_map_key=x.coordinate_map_key, coordinate_manager=x.coordinate_manager))  # fmt: skip
            return me.MinkowskiLocalPoolingTransposeFunction.apply(
                c.F, getattr(me.PoolingMode, kind), unpool.kernel_generator,
                c.coordinate_map_key, y.coordinate_map_key, x.coordinate_manager,
            )  # fmt: skip

        return y, fn

    _function_case(dim, build)


@pytest.mark.me_names("MinkowskiGlobalPoolingFunction", "PoolingMode")
@pytest.mark.parametrize("kind", ["SUM", "AVG", "MAX"])
def test_global_pooling_function(kind: str) -> None:
    def build(me: Any, x: Any) -> tuple[Any, Callable[..., Any]]:
        y = me.MinkowskiGlobalSumPooling()(x)
        mode = getattr(me.PoolingMode, f"GLOBAL_{kind}_POOLING_KERNEL")
        return y, lambda f: me.MinkowskiGlobalPoolingFunction.apply(
            f, mode, x.coordinate_map_key, y.coordinate_map_key, x.coordinate_manager
        )

    _function_case(3, build)


@pytest.mark.me_names(
    "MinkowskiDirectMaxPoolingFunction",
    "MinkowskiSPMMFunction",
    "MinkowskiSPMMAverageFunction",
    "spmm",
)
def test_direct_max_pooling_and_spmm_functions() -> None:
    g = torch.Generator().manual_seed(3)
    in_map, out_map = (
        torch.randint(0, 20, (60,), generator=g),
        torch.randint(0, 8, (60,), generator=g),
    )
    feats = torch.randn(20, 5, generator=g)
    rows_, cols = torch.randint(0, 7, (30,), generator=g), torch.randint(0, 20, (30,), generator=g)
    vals = torch.randn(30, generator=g)
    size = torch.Size([7, 20])
    upstream = torch.randn(8, 5, generator=g)
    res = {}
    for name, me in ENGINES:
        f = feats.clone().requires_grad_(True)
        pooled = me.MinkowskiDirectMaxPoolingFunction.apply(in_map.int(), out_map.int(), f, 8)
        (pooled * upstream).sum().backward()
        m = feats.clone().requires_grad_(True)
        s1 = me.MinkowskiSPMMFunction.apply(rows_, cols, vals, size, m)
        s2 = me.MinkowskiSPMMAverageFunction.apply(rows_, cols, size, m)
        (s1.sum() + (s2 * s2).sum()).backward()
        res[name] = (pooled, f.grad, s1, s2, m.grad, me.spmm(rows_, cols, vals, size, feats))
    for n, m in zip(res["native"], res["mink"], strict=True):
        assert rel_err(n, m) < REL


# -- modules -------------------------------------------------------------------------------------
@pytest.mark.me_names("modules")
@pytest.mark.parametrize("dim", [3, 4])
def test_resnet_blocks(dim: int) -> None:
    import importlib

    def basic(me: Any) -> torch.nn.Module:
        blocks = importlib.import_module(f"{me.__name__}.modules.resnet_block")
        return blocks.BasicBlock(4, 4, dimension=dim)

    run_layer(basic, dim, 4, dtype=torch.float64)

    def bottleneck(me: Any) -> torch.nn.Module:
        blocks = importlib.import_module(f"{me.__name__}.modules.resnet_block")
        down = torch.nn.Sequential(
            me.MinkowskiConvolution(4, 8, kernel_size=2, stride=2, dimension=dim),
            me.MinkowskiBatchNorm(8),
        )
        return blocks.Bottleneck(4, 2, stride=2, downsample=down, dimension=dim)

    run_layer(bottleneck, dim, 4, dtype=torch.float64)


@pytest.mark.me_names("modules")
def test_se_layer() -> None:
    """MinkowskiEngine 0.5.4's SEBasicBlock / SEBottleneck cannot be built (they pass ``D=`` to
    blocks without that argument); its SELayer can."""
    import importlib

    def build(me: Any) -> torch.nn.Module:
        return importlib.import_module(f"{me.__name__}.modules.senet_block").SELayer(16, 4, D=3)

    run_layer(build, 3, 16, dtype=torch.float64)
