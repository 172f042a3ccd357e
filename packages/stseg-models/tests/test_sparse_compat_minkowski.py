"""Native engine == MinkowskiEngine 0.5.4 (forward, output coordinates, gradients); `nox -s compat`.

Skipped unless MinkowskiEngine imports (build it with `stseg-models install-minkowski`); with
STSEG_REQUIRE_MINKOWSKI=1 (set by `nox -s compat`) a missing MinkowskiEngine fails instead. Every case
uses random sparse inputs over 2 scenes, identical weights in both engines, float32, and compares
rows matched by coordinate (the engines may order strided outputs differently) with a relative
error below 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import stseg_models.sparse as NATIVE
from stseg_models.testing import minkowski_or_skip

pytestmark = pytest.mark.minkowski

MINK = minkowski_or_skip()

REL = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12)) if b.numel() else 0.0


def rows_by_coord(coords: torch.Tensor) -> dict[tuple[int, ...], int]:
    return {tuple(r): i for i, r in enumerate(coords.tolist())}


def align(native_c: torch.Tensor, mink_c: torch.Tensor) -> torch.Tensor:
    """Index into MinkowskiEngine rows for each native row (same coordinate sets required)."""
    table = rows_by_coord(mink_c)
    assert len(table) == len(native_c)
    return torch.tensor([table[tuple(r)] for r in native_c.tolist()])


def random_input(
    dim: int, channels: int, seed: int, n: int = 300, extent: int = 9
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    coords = torch.cat(
        [torch.randint(0, 2, (n, 1), generator=g), torch.randint(0, extent, (n, dim), generator=g)],
        1,
    )
    coords = torch.unique(coords, dim=0).int()
    return coords, torch.randn(len(coords), channels, generator=g)


def run_both(
    build: Callable[[object], torch.nn.Module],
    dim: int,
    channels: int,
    seed: int = 0,
    prepare: Callable[[object, object], object] | None = None,
) -> None:
    """Build the same layer in both engines (weights copied), compare outputs and gradients."""
    coords, feats = random_input(dim, channels, seed)
    layers = {"native": build(NATIVE), "mink": build(MINK)}
    layers["mink"].load_state_dict(layers["native"].state_dict())
    results = {}
    for name, me in (("native", NATIVE), ("mink", MINK)):
        x_feats = feats.clone().requires_grad_(True)
        x = me.SparseTensor(x_feats, coords)
        if prepare is not None:
            x = prepare(me, x)
        y = layers[name](x)
        results[name] = (x_feats, y)
    (fn_, yn), (fm, ym) = results["native"], results["mink"]
    out_rows = align(yn.C, ym.C)
    assert rel_err(yn.F, ym.F[out_rows]) < REL
    upstream = torch.randn(yn.F.shape, generator=torch.Generator().manual_seed(seed + 1))
    yn.F.backward(upstream)
    grad_m = torch.zeros_like(ym.F)
    grad_m[out_rows] = upstream
    ym.F.backward(grad_m)
    # gradients w.r.t. the user's feature tensor: same row order in both engines
    assert rel_err(fn_.grad, fm.grad) < REL
    for (pname, pn), (_, pm) in zip(
        layers["native"].named_parameters(), layers["mink"].named_parameters(), strict=True
    ):
        assert pn.grad is not None and pm.grad is not None, pname
        assert rel_err(pn.grad, pm.grad) < REL, pname


CONV_CASES = [
    (3, 1, 1, 1),
    (3, 2, 2, 1),
    (3, 3, 1, 1),
    (3, 3, 1, 2),
    (3, 3, 2, 1),
    (3, 5, 1, 1),
    (4, 2, 2, 1),
    (4, 3, 1, 1),
]


@pytest.mark.me_names("SparseTensor", "MinkowskiConvolution")
@pytest.mark.parametrize(("dim", "k", "stride", "dilation"), CONV_CASES)
def test_convolution(dim: int, k: int, stride: int, dilation: int) -> None:
    run_both(
        lambda me: me.MinkowskiConvolution(
            4, 5, kernel_size=k, stride=stride, dilation=dilation, bias=True, dimension=dim
        ),
        dim,
        4,
        seed=k,
    )


@pytest.mark.me_names("MinkowskiConvolution", "KernelGenerator", "RegionType")
def test_convolution_cross_region() -> None:
    def build(me: object) -> torch.nn.Module:
        gen = me.KernelGenerator(3, region_type=me.RegionType.HYPER_CROSS, dimension=3)  # type: ignore[attr-defined]
        return me.MinkowskiConvolution(3, 4, kernel_generator=gen, dimension=3)  # type: ignore[attr-defined]

    run_both(build, 3, 3, seed=3)


@pytest.mark.me_names("MinkowskiConvolution")
def test_hybrid_region_equals_a_sparse_hypercube_in_minkowski() -> None:
    """MinkowskiEngine 0.5.4 cannot build the 4D hybrid kernel (no HYBRID region, broken CUSTOM),
    so compare our hybrid convolution with its 3^4 hypercube whose extra offsets carry zero weight."""
    cube, cross = NATIVE.RegionType.HYPER_CUBE, NATIVE.RegionType.HYPER_CROSS
    gen = NATIVE.KernelGenerator(3, axis_types=[cube] * 3 + [cross], dimension=4)
    hybrid = NATIVE.MinkowskiConvolution(3, 4, kernel_generator=gen, dimension=4)
    full = MINK.MinkowskiConvolution(3, 4, kernel_size=3, dimension=4)
    full_offsets = list(NATIVE.KernelGenerator(3, dimension=4).offsets)
    hybrid_offsets = list(gen.offsets)
    assert len(hybrid_offsets) == 29
    with torch.no_grad():
        full.kernel.zero_()
        for k, offset in enumerate(hybrid_offsets):
            full.kernel[full_offsets.index(offset)] = hybrid.kernel[k]
    coords, feats = random_input(4, 3, seed=3)
    y_native = hybrid(NATIVE.SparseTensor(feats, coords))
    y_mink = full(MINK.SparseTensor(feats, coords))
    rows = align(y_native.C, y_mink.C)
    assert rel_err(y_native.F, y_mink.F[rows]) < REL


@pytest.mark.me_names("MinkowskiConvolutionTranspose")
@pytest.mark.parametrize(("dim", "k"), [(3, 2), (3, 3), (4, 2)])
def test_transposed_convolution(dim: int, k: int) -> None:
    def prepare(me: object, x: object) -> object:
        down = me.MinkowskiConvolution(3, 3, kernel_size=2, stride=2, dimension=dim)  # type: ignore[attr-defined]
        torch.nn.init.constant_(down.kernel, 0.1)
        return down(x)

    run_both(
        lambda me: me.MinkowskiConvolutionTranspose(3, 4, kernel_size=k, stride=2, dimension=dim),
        dim,
        3,
        prepare=prepare,
    )


@pytest.mark.me_names("MinkowskiMaxPooling", "MinkowskiAvgPooling", "MinkowskiSumPooling")
@pytest.mark.parametrize(
    "kind", ["MinkowskiMaxPooling", "MinkowskiAvgPooling", "MinkowskiSumPooling"]
)
@pytest.mark.parametrize(("dim", "k", "stride"), [(3, 2, 2), (3, 3, 1), (4, 3, 2)])
def test_local_pooling(kind: str, dim: int, k: int, stride: int) -> None:
    run_both(lambda me: getattr(me, kind)(kernel_size=k, stride=stride, dimension=dim), dim, 3)


@pytest.mark.me_names("MinkowskiPoolingTranspose")
def test_pooling_transpose() -> None:
    def prepare(me: object, x: object) -> object:
        return me.MinkowskiAvgPooling(kernel_size=2, stride=2, dimension=3)(x)  # type: ignore[attr-defined]

    run_both(
        lambda me: me.MinkowskiPoolingTranspose(kernel_size=2, stride=2, dimension=3),
        3,
        3,
        prepare=prepare,
    )


@pytest.mark.me_names(
    "MinkowskiGlobalAvgPooling", "MinkowskiGlobalMaxPooling", "MinkowskiGlobalSumPooling"
)
@pytest.mark.parametrize(
    "kind", ["MinkowskiGlobalAvgPooling", "MinkowskiGlobalMaxPooling", "MinkowskiGlobalSumPooling"]
)
def test_global_pooling(kind: str) -> None:
    run_both(lambda me: getattr(me, kind)(), 3, 3)


@pytest.mark.me_names("MinkowskiBatchNorm", "MinkowskiInstanceNorm")
@pytest.mark.parametrize("kind", ["MinkowskiBatchNorm", "MinkowskiInstanceNorm"])
def test_normalisation(kind: str) -> None:
    run_both(lambda me: getattr(me, kind)(3), 3, 3)


@pytest.mark.me_names(
    "MinkowskiReLU",
    "MinkowskiLeakyReLU",
    "MinkowskiELU",
    "MinkowskiSELU",
    "MinkowskiGELU",
    "MinkowskiSigmoid",
    "MinkowskiTanh",
)
@pytest.mark.parametrize(
    "kind",
    [
        "MinkowskiReLU",
        "MinkowskiLeakyReLU",
        "MinkowskiELU",
        "MinkowskiSELU",
        "MinkowskiGELU",
        "MinkowskiSigmoid",
        "MinkowskiTanh",
    ],
)
def test_nonlinearity(kind: str) -> None:
    run_both(lambda me: getattr(me, kind)(), 3, 3)


# Non-linearities that take arguments (PReLU's weight is copied by run_both; Softmin and
# LogSoftmax normalise over the channel dimension, as a user of a [N, C] feature matrix means).
ARGUMENT_NONLINEARITIES = [
    ("MinkowskiPReLU", {"num_parameters": 3, "init": 0.2}),
    ("MinkowskiReLU6", {}),
    ("MinkowskiSiLU", {}),
    ("MinkowskiTanhshrink", {}),
    ("MinkowskiSoftmin", {"dim": 1}),
    ("MinkowskiLogSoftmax", {"dim": 1}),
]


@pytest.mark.me_names(
    "MinkowskiPReLU",
    "MinkowskiReLU6",
    "MinkowskiSiLU",
    "MinkowskiTanhshrink",
    "MinkowskiSoftmin",
    "MinkowskiLogSoftmax",
)
@pytest.mark.parametrize(("kind", "kwargs"), ARGUMENT_NONLINEARITIES)
def test_nonlinearity_with_arguments(kind: str, kwargs: dict[str, object]) -> None:
    run_both(lambda me: getattr(me, kind)(**kwargs), 3, 3)


@pytest.mark.me_names("MinkowskiLinear")
def test_linear() -> None:
    run_both(lambda me: me.MinkowskiLinear(3, 5), 3, 3)


@pytest.mark.me_names("cat")
def test_unet_block_with_cat() -> None:
    class Tiny(torch.nn.Module):
        def __init__(self, me: object) -> None:
            super().__init__()
            self.me = me
            self.down = me.MinkowskiConvolution(3, 4, kernel_size=2, stride=2, dimension=3)  # type: ignore[attr-defined]
            self.mid = me.MinkowskiConvolution(4, 4, kernel_size=3, dimension=3)  # type: ignore[attr-defined]
            self.up = me.MinkowskiConvolutionTranspose(4, 4, kernel_size=2, stride=2, dimension=3)  # type: ignore[attr-defined]
            self.out = me.MinkowskiConvolution(7, 2, kernel_size=3, bias=True, dimension=3)  # type: ignore[attr-defined]

        def forward(self, x: object) -> object:
            y = self.up(self.mid(self.down(x)))
            return self.out(self.me.cat(y, x))  # type: ignore[attr-defined]

    run_both(Tiny, 3, 3, seed=8)


@pytest.mark.me_names("TensorField")
def test_tensor_field_slice() -> None:
    g = torch.Generator().manual_seed(4)
    xyz = torch.cat(
        [torch.randint(0, 2, (200, 1), generator=g).float(), torch.rand(200, 3, generator=g) * 6], 1
    )
    feats = torch.randn(200, 3, generator=g)
    outs = {}
    conv_n = NATIVE.MinkowskiConvolution(3, 4, kernel_size=3, dimension=3)
    conv_m = MINK.MinkowskiConvolution(3, 4, kernel_size=3, dimension=3)
    conv_m.load_state_dict(conv_n.state_dict())
    for name, me, conv in (("native", NATIVE, conv_n), ("mink", MINK, conv_m)):
        field = me.TensorField(feats, xyz)
        outs[name] = conv(field.sparse()).slice(field).F
    assert rel_err(outs["native"], outs["mink"]) < REL
