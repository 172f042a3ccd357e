"""Union, pruning, broadcast, channelwise convolution and instance norms against slow references.

Every reference loops over coordinates in Python; inputs are small random sparse tensors over two
scenes in 3D and 4D; gradients of the ops with their own backward are checked with gradcheck in
float64.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import stseg_models.sparse as ME
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.modes import BroadcastMode


def random_coords(dim: int, seed: int, n: int = 60, extent: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coords = torch.cat(
        [torch.randint(0, 2, (n, 1), generator=g), torch.randint(0, extent, (n, dim), generator=g)],
        1,
    )
    # unique rows in a random (not sorted) order
    coords = torch.unique(coords, dim=0)
    return coords[torch.randperm(len(coords), generator=g)].int()


def random_tensor(
    dim: int, channels: int, seed: int, manager: ME.CoordinateManager | None = None
) -> ME.SparseTensor:
    coords = random_coords(dim, seed)
    g = torch.Generator().manual_seed(seed + 100)
    feats = torch.randn(len(coords), channels, generator=g, dtype=torch.float64)
    return ME.SparseTensor(feats.requires_grad_(), coords, coordinate_manager=manager)


def as_rows(coords: torch.Tensor) -> list[tuple[int, ...]]:
    return [tuple(r) for r in coords.tolist()]


# -- union ---------------------------------------------------------------------------------------
def reference_union(tensors: list[ME.SparseTensor]) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """Coordinates in order of first occurrence over the inputs in turn, features summed."""
    acc: dict[tuple[int, ...], torch.Tensor] = {}
    for t in tensors:
        for coord, feat in zip(as_rows(t.C), t.F.detach(), strict=True):
            acc[coord] = acc[coord] + feat if coord in acc else feat.clone()
    return list(acc), torch.stack(list(acc.values()))


@pytest.mark.parametrize("dim", [3, 4])
@pytest.mark.parametrize("count", [2, 3])
def test_union_equals_reference(dim: int, count: int) -> None:
    first = random_tensor(dim, 3, seed=dim)
    tensors = [first] + [
        random_tensor(dim, 3, seed=dim + 10 * i, manager=first.coordinate_manager)
        for i in range(1, count)
    ]
    out = ME.MinkowskiUnion()(*tensors)
    coords, feats = reference_union(tensors)
    assert as_rows(out.C) == coords
    torch.testing.assert_close(out.F, feats)
    assert out.tensor_stride == [1] * dim
    assert out.coordinate_manager is first.coordinate_manager
    upstream = torch.randn_like(out.F)
    out.F.backward(upstream)
    row_of = {c: i for i, c in enumerate(coords)}
    for t in tensors:
        expected = torch.stack([upstream[row_of[c]] for c in as_rows(t.C)])
        torch.testing.assert_close(t.F.grad, expected)


def test_union_function_gradcheck_and_errors() -> None:
    a = random_tensor(3, 2, seed=1)
    b = random_tensor(3, 2, seed=2, manager=a.coordinate_manager)
    keys, manager = [a.coordinate_map_key, b.coordinate_map_key], a.coordinate_manager
    fa, fb = a.F.detach().requires_grad_(), b.F.detach().requires_grad_()
    assert gradcheck(
        lambda x, y: ME.MinkowskiUnionFunction.apply(keys, None, manager, x, y), (fa, fb)
    )
    with pytest.raises(SparseInputError, match="at least 2"):
        ME.MinkowskiUnion()(a)
    other = random_tensor(3, 2, seed=3)
    with pytest.raises(SparseInputError, match="coordinate managers"):
        ME.MinkowskiUnion()(a, other)


# -- pruning -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [3, 4])
def test_pruning_keeps_masked_rows_in_order(dim: int) -> None:
    x = random_tensor(dim, 3, seed=dim)
    g = torch.Generator().manual_seed(5)
    mask = torch.rand(len(x), generator=g) < 0.5
    keys_before = len(x.coordinate_manager.get_coordinate_map_keys())
    out = ME.MinkowskiPruning()(x, mask)
    kept = [i for i in range(len(x)) if bool(mask[i])]
    assert as_rows(out.C) == [as_rows(x.C)[i] for i in kept]
    torch.testing.assert_close(out.F, x.F.detach()[kept])
    # a new set in the same manager, same tensor stride; the input set is untouched
    assert out.coordinate_manager is x.coordinate_manager
    assert out.coordinate_map_key != x.coordinate_map_key
    assert len(x.coordinate_manager.get_coordinate_map_keys()) == keys_before + 1
    assert out.tensor_stride == x.tensor_stride and len(x.C) == len(mask)
    upstream = torch.randn_like(out.F)
    out.F.backward(upstream)
    expected = torch.zeros_like(x.F)
    expected[kept] = upstream
    torch.testing.assert_close(x.F.grad, expected)


def test_pruning_function_gradcheck_edge_masks_and_errors() -> None:
    x = random_tensor(3, 2, seed=7)
    mask = torch.arange(len(x)) % 3 == 0
    f = x.F.detach().requires_grad_()
    key, manager = x.coordinate_map_key, x.coordinate_manager
    assert gradcheck(lambda v: ME.MinkowskiPruningFunction.apply(v, mask, key, None, manager), (f,))
    empty = ME.MinkowskiPruning()(x, torch.zeros(len(x), dtype=torch.bool))
    assert empty.F.shape == (0, 2) and empty.C.shape == (0, 4)
    full = ME.MinkowskiPruning()(x, torch.ones(len(x), dtype=torch.bool))
    assert torch.equal(full.C, x.C)
    with pytest.raises(SparseInputError, match="shape"):
        ME.MinkowskiPruning()(x, torch.ones(len(x) + 1, dtype=torch.bool))


# -- broadcast -----------------------------------------------------------------------------------
def scene_rows(x: ME.SparseTensor, glob: ME.SparseTensor) -> list[int]:
    """For each row of x, the row of glob with its batch index (by scanning)."""
    out = []
    for b in x.C[:, 0].tolist():
        out.append(next(i for i, c in enumerate(glob.C[:, 0].tolist()) if c == b))
    return out


@pytest.mark.parametrize("dim", [3, 4])
@pytest.mark.parametrize(
    ("layer", "op"),
    [
        ("MinkowskiBroadcastAddition", lambda a, g: a + g),
        ("MinkowskiBroadcastMultiplication", lambda a, g: a * g),
        ("MinkowskiBroadcast", lambda a, g: g),
        ("MinkowskiBroadcastConcatenation", lambda a, g: torch.cat([a, g])),
    ],
)
def test_broadcast_layers_equal_reference(dim: int, layer: str, op) -> None:  # type: ignore[no-untyped-def]
    x = random_tensor(dim, 3, seed=dim)
    glob = ME.MinkowskiGlobalMaxPooling()(x)
    out = getattr(ME, layer)()(x, glob)
    assert out.coordinate_map_key == x.coordinate_map_key
    rows = scene_rows(x, glob)
    expected = torch.stack([op(x.F[i], glob.F[r]) for i, r in enumerate(rows)])
    torch.testing.assert_close(out.F, expected.detach())


@pytest.mark.parametrize("mode", list(BroadcastMode))
def test_broadcast_function_gradcheck(mode: BroadcastMode) -> None:
    x = random_tensor(3, 2, seed=4)
    glob = ME.MinkowskiGlobalAvgPooling()(x)
    f, gf = x.F.detach().requires_grad_(), glob.F.detach().requires_grad_()
    keys = (x.coordinate_map_key, glob.coordinate_map_key, x.coordinate_manager)
    assert gradcheck(lambda a, b: ME.MinkowskiBroadcastFunction.apply(a, b, mode, *keys), (f, gf))


def test_broadcast_needs_a_row_per_scene() -> None:
    x = random_tensor(3, 2, seed=4)
    with pytest.raises(SparseInputError, match="one row per batch index"):
        ME.MinkowskiBroadcastAddition()(x, x)


# -- channelwise convolution ---------------------------------------------------------------------
def reference_channelwise(
    x: ME.SparseTensor, layer: ME.MinkowskiChannelwiseConvolution, out_coords: torch.Tensor
) -> torch.Tensor:
    gen = layer.kernel_generator
    scale = [s * d for s, d in zip(x.tensor_stride, gen.kernel_dilation, strict=True)]
    rows = {c: i for i, c in enumerate(as_rows(x.C))}
    out = torch.zeros(len(out_coords), x.F.shape[1], dtype=x.F.dtype)
    for o, coord in enumerate(as_rows(out_coords)):
        for k, offset in enumerate(gen.offsets):
            q = (coord[0], *(c + s * d for c, s, d in zip(coord[1:], scale, offset, strict=True)))
            if q in rows:
                out[o] += layer.kernel[k].detach() * x.F[rows[q]].detach()
    if layer.bias is not None:
        out += layer.bias.detach()
    return out


@pytest.mark.parametrize(
    ("dim", "k", "stride", "dilation"),
    [(3, 3, 1, 1), (3, 2, 2, 1), (3, 3, 2, 1), (3, 3, 1, 2), (4, 3, 1, 1), (4, 2, 2, 1)],
)
def test_channelwise_convolution_equals_reference(
    dim: int, k: int, stride: int, dilation: int
) -> None:
    x = random_tensor(dim, 3, seed=k + stride)
    layer = ME.MinkowskiChannelwiseConvolution(
        3, kernel_size=k, stride=stride, dilation=dilation, bias=True, dimension=dim
    ).double()
    assert layer.kernel.shape == (k**dim, 3) and layer.bias is not None
    assert layer.bias.shape == (1, 3)
    out = layer(x)
    floored = x.C.clone()
    floored[:, 1:] = torch.div(floored[:, 1:], stride, rounding_mode="floor") * stride
    assert set(as_rows(out.C)) == set(as_rows(floored))
    assert out.tensor_stride == [stride] * dim
    torch.testing.assert_close(out.F, reference_channelwise(x, layer, out.C))
    f = x.F.detach().requires_grad_()

    def run(feats: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        from stseg_models.sparse.channelwise import channelwise_conv

        kmap = x.coordinate_manager.kernel_map(
            x.coordinate_map_key, out.coordinate_map_key, layer.kernel_generator
        )
        return channelwise_conv(feats, kernel, kmap)

    assert gradcheck(run, (f, layer.kernel.detach().requires_grad_()))


def test_channelwise_state_dict_names() -> None:
    layer = ME.MinkowskiChannelwiseConvolution(4, kernel_size=3, dimension=3)
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == {"kernel": (27, 4)}


# -- instance norms ------------------------------------------------------------------------------
def reference_instance_norm(x: ME.SparseTensor, eps: float) -> torch.Tensor:
    out = torch.empty_like(x.F)
    batch = x.C[:, 0].tolist()
    for b in set(batch):
        rows = [i for i, v in enumerate(batch) if v == b]
        f = x.F.detach()[rows]
        out[rows] = (f - f.mean(0)) / torch.sqrt(f.var(0, unbiased=False) + eps)
    return out.detach()


@pytest.mark.parametrize("dim", [3, 4])
def test_stable_instance_norm_equals_reference(dim: int) -> None:
    x = random_tensor(dim, 3, seed=dim)
    layer = ME.MinkowskiStableInstanceNorm(3).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, 2.0, -1.0]]))
        layer.bias.copy_(torch.tensor([[0.1, 0.0, 0.3]]))
    out = layer(x)
    expected = reference_instance_norm(x, 1e-6) * layer.weight.detach() + layer.bias.detach()
    torch.testing.assert_close(out.F, expected)
    assert sorted(layer.state_dict()) == ["bias", "weight"]


def test_instance_norm_function_equals_reference_and_gradcheck() -> None:
    x = random_tensor(3, 3, seed=9)
    key, manager = x.coordinate_map_key, x.coordinate_manager
    out = ME.MinkowskiInstanceNormFunction.apply(x.F, key, None, manager)
    torch.testing.assert_close(out, reference_instance_norm(x, 1e-8))
    f = x.F.detach().requires_grad_()
    assert gradcheck(lambda v: ME.MinkowskiInstanceNormFunction.apply(v, key, None, manager), (f,))
