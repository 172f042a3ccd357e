"""Explicit output coordinates, ``layer(x, coordinates=...)``, against slow references, 3D and 4D.

MinkowskiEngine 0.5.4 rules (measured): a coordinate tensor is inserted into the input's manager
(duplicates dropped, first occurrence kept) at tensor stride 0 for convolutions (its code passes the
expand flag where the stride goes) and 1 for poolings; kernel offsets scale with the input stride
(forward) or the output stride (transposed: stride 0, so every offset hits the same coordinate); a
max-pooled output without neighbours is the dtype's lowest value.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import stseg_models.sparse as ME


def cube3(dim: int) -> list[tuple[int, ...]]:
    return [tuple(reversed(p)) for p in itertools.product(*[range(-1, 2)] * dim)]


def random_set(dim: int, n: int, seed: int, stride: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pts = torch.cat(
        [
            torch.randint(0, 2, (n, 1), generator=g),
            torch.randint(0, 5, (n, dim), generator=g) * stride,
        ],
        1,
    )
    return torch.unique(pts, dim=0).int()


def neighbours(coords: torch.Tensor, o: tuple[int, ...], step: int) -> list[tuple[int, int]]:
    """(kernel index, input row) of every input at o + step * offset_k."""
    rows = {tuple(c): i for i, c in enumerate(coords.tolist())}
    out = []
    for k, off in enumerate(cube3(len(o) - 1)):
        n = (o[0], *[o[i + 1] + step * off[i] for i in range(len(off))])
        if n in rows:
            out.append((k, rows[n]))
    return out


def unique_in_order(q: torch.Tensor) -> list[tuple[int, ...]]:
    seen: list[tuple[int, ...]] = []
    for row in map(tuple, q.tolist()):
        if row not in seen:
            seen.append(row)
    return seen


@pytest.mark.parametrize("dim", [3, 4])
@pytest.mark.parametrize("stride", [1, 2])
def test_convolution_on_given_coordinates(dim: int, stride: int) -> None:
    coords = random_set(dim, 40, dim)
    feats = torch.randn(len(coords), 2, dtype=torch.float64)
    query = torch.cat([random_set(dim, 15, 9), coords[:3], coords[:2]]).int()
    conv = ME.MinkowskiConvolution(2, 3, kernel_size=3, stride=stride, dimension=dim).double()
    y = conv(ME.SparseTensor(feats, coords), coordinates=query)
    assert y.tensor_stride == [0] * dim
    assert y.C.tolist() == [list(r) for r in unique_in_order(query)]
    w = conv.kernel.detach()
    for o, got in zip(map(tuple, y.C.tolist()), y.F, strict=True):
        want = sum((feats[i] @ w[k] for k, i in neighbours(coords, o, 1)), torch.zeros(3).double())
        assert torch.allclose(got, want)


@pytest.mark.parametrize("dim", [3, 4])
def test_transposed_convolution_on_given_coordinates(dim: int) -> None:
    coords = random_set(dim, 30, 1, stride=2)
    feats = torch.randn(len(coords), 2, dtype=torch.float64)
    query = torch.cat([coords[:5], random_set(dim, 10, 4)]).int()
    conv = ME.MinkowskiConvolutionTranspose(2, 2, kernel_size=3, stride=2, dimension=dim).double()
    y = conv(ME.SparseTensor(feats, coords, tensor_stride=2), coordinates=query)
    rows = {tuple(c): i for i, c in enumerate(coords.tolist())}
    w_sum = conv.kernel.detach().sum(dim=0)  # all offsets meet the same coordinate (stride 0)
    for o, got in zip(map(tuple, y.C.tolist()), y.F, strict=True):
        want = feats[rows[o]] @ w_sum if o in rows else torch.zeros(2, dtype=torch.float64)
        assert torch.allclose(got, want)


@pytest.mark.parametrize("dim", [3, 4])
@pytest.mark.parametrize("mode", ["avg", "sum", "max"])
def test_pooling_on_given_coordinates(dim: int, mode: str) -> None:
    coords = random_set(dim, 40, 2)
    feats = torch.randn(len(coords), 2, dtype=torch.float64, requires_grad=True)
    far = torch.tensor([[0] + [50] * dim], dtype=torch.int32)
    query = torch.cat([coords[:6], far]).int()
    layer = {
        "avg": ME.MinkowskiAvgPooling, "sum": ME.MinkowskiSumPooling, "max": ME.MinkowskiMaxPooling,
    }[mode](kernel_size=3, stride=2, dimension=dim)  # fmt: skip
    y = layer(ME.SparseTensor(feats, coords), coordinates=query)
    assert y.tensor_stride == [1] * dim
    for o, got in zip(map(tuple, y.C.tolist()), y.F, strict=True):
        vals = torch.stack([feats[i] for _, i in neighbours(coords, o, 1)] or [feats[0] * 0])
        if not neighbours(coords, o, 1):
            lowest = torch.finfo(torch.float64).min
            want = torch.full((2,), lowest if mode == "max" else 0.0, dtype=torch.float64)
        else:
            want = {"avg": vals.mean(0), "sum": vals.sum(0), "max": vals.amax(0)}[mode]
        assert torch.allclose(got, want)
    if mode != "max":
        y.F.sum().backward()
        assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_coordinates_as_key_or_sparse_tensor() -> None:
    coords = random_set(3, 30, 5)
    x = ME.SparseTensor(torch.randn(len(coords), 2), coords)
    target = ME.SparseTensor(
        torch.zeros(4, 1), coords[:4], tensor_stride=1, coordinate_manager=x.coordinate_manager
    )
    conv = ME.MinkowskiConvolution(2, 2, kernel_size=3, dimension=3)
    by_key = conv(x, coordinates=target.coordinate_map_key)
    by_tensor = conv(x, coordinates=target)
    assert by_key.coordinate_map_key == target.coordinate_map_key
    assert torch.equal(by_key.F, by_tensor.F) and by_key.C.tolist() == coords[:4].tolist()
    stranger = ME.SparseTensor(torch.zeros(4, 1), coords[:4])
    with pytest.raises(ME.SparseInputError, match="different coordinate manager"):
        conv(x, coordinates=stranger)
    with pytest.raises(ME.SparseInputError, match="not in this coordinate manager"):
        conv(x, coordinates=ME.CoordinateMapKey([1, 1, 1], "nope"))
    with pytest.raises(ME.SparseInputError, match="coordinates must be"):
        conv(x, coordinates=[[0, 0, 0, 0]])


def test_pointwise_convolution_ignores_coordinates() -> None:
    """A size-1, stride-1 kernel multiplies on the input set (MinkowskiEngine's use_mm path)."""
    coords = random_set(3, 20, 6)
    x = ME.SparseTensor(torch.randn(len(coords), 2), coords)
    y = ME.MinkowskiConvolution(2, 2, kernel_size=1, dimension=3)(x, coordinates=coords[:3])
    assert y.coordinate_map_key == x.coordinate_map_key
