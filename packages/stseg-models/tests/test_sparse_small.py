"""Small-input fast paths (`sparse.small`, the small-map convolution) against slow references.

Each dictionary / patch route must give exactly what the vectorised route gives (same rows, same
pair order, same flags) and what a plain loop over coordinate tuples gives.
"""

from __future__ import annotations

import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.sparse import conv_function, hashing, kernel_map
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.kernel import KernelGenerator
from stseg_models.sparse.reference import coord_dict, strided_coords
from stseg_models.sparse.small import small_kernel_map, small_strided_rows, small_unique_rows

SEEDS = range(6)


def random_coords(n: int, dim: int, extent: int, seed: int, unique: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rows = torch.cat(
        [
            torch.randint(0, 2, (n, 1), generator=g),
            torch.randint(-extent, extent, (n, dim), generator=g),
        ],
        dim=1,
    ).int()
    if unique:
        keep = sorted({tuple(r): i for i, r in reversed(list(enumerate(rows.tolist())))}.values())
        rows = rows[keep]
    return rows


def reference_unique(coords: torch.Tensor) -> tuple[list[int], list[int]]:
    """First occurrences and inverse by a plain loop."""
    first: list[tuple[int, ...]] = []
    unique, inverse = [], []
    for i, row in enumerate(map(tuple, coords.tolist())):
        if row not in first:
            first.append(row)
            unique.append(i)
        inverse.append(first.index(row))
    return unique, inverse


@pytest.mark.parametrize("seed", SEEDS)
def test_small_unique_rows_matches_loop_and_vectorised(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    coords = random_coords(40, 3, 2, seed, unique=False)  # many duplicates
    unique, inverse = small_unique_rows(coords)
    ref_unique, ref_inverse = reference_unique(coords)
    assert unique.tolist() == ref_unique and inverse.tolist() == ref_inverse
    assert unique.dtype == inverse.dtype == torch.int64
    monkeypatch.setattr(hashing, "SMALL_ROWS", 0)
    vec_unique, vec_inverse = hashing.unique_rows(coords)
    assert torch.equal(unique, vec_unique) and torch.equal(inverse, vec_inverse)


def test_small_unique_rows_all_unique_are_separate_tensors() -> None:
    unique, inverse = small_unique_rows(random_coords(10, 2, 20, 0))
    assert unique.tolist() == list(range(len(unique)))
    unique[0] = 5
    assert inverse[0] == 0  # not the same storage (a caller may write into one)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("stride", [(2, 2, 2), (2, 4, 1)])
def test_small_strided_rows_match_floor_then_unique(seed: int, stride: tuple[int, ...]) -> None:
    coords = random_coords(30, 3, 5, seed)
    rows = small_strided_rows(coords, stride)
    assert rows.dtype == coords.dtype
    floored = hashing.floor_to_stride(coords.long(), torch.tensor(stride))
    assert set(map(tuple, rows.tolist())) == strided_coords(coords, stride)
    ref_unique, _ = reference_unique(floored)  # first-occurrence order
    assert rows.tolist() == floored[ref_unique].tolist()


def _vectorised_map(
    in_c: torch.Tensor, out_c: torch.Tensor, offsets: torch.Tensor, same: bool, monkeypatch
):
    with monkeypatch.context() as m:
        m.setattr(kernel_map, "SMALL_QUERIES", 0)
        return kernel_map.build_kernel_map(in_c, out_c, offsets, same_set=same)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", ["same", "strided", "other"])
def test_small_kernel_map_equals_vectorised_and_loop(
    seed: int, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_c = random_coords(24, 3, 3, seed)
    if case == "same":
        out_c, offsets = in_c, KernelGenerator(3, dimension=3).region_offsets
    elif case == "strided":
        out_c = small_strided_rows(in_c, (2, 2, 2))
        offsets = KernelGenerator(2, dimension=3).region_offsets
    else:
        out_c = random_coords(10, 3, 3, seed + 100)
        offsets = torch.tensor([[1, 0, 0], [0, -2, 1], [0, 0, 0]])
    same = case == "same"
    fast = kernel_map.build_kernel_map(in_c, out_c, offsets, same_set=same)
    assert fast._patch_rows is not None  # built by the dictionary route
    slow = _vectorised_map(in_c, out_c, offsets, same, monkeypatch)
    assert torch.equal(fast.in_idx, slow.in_idx) and torch.equal(fast.out_idx, slow.out_idx)
    assert fast.in_idx.dtype == fast.out_idx.dtype == torch.int32
    assert fast.counts == slow.counts and (fast.num_in, fast.num_out) == (slow.num_in, slow.num_out)
    assert (fast.identity, fast.mirror) == (slow.identity, slow.mirror)
    assert (fast.in_unique, fast.out_unique) == (slow.in_unique, slow.out_unique)
    table = coord_dict(in_c)
    expected = []
    for k, off in enumerate(offsets.tolist()):
        for o, p in enumerate(out_c.tolist()):
            q = (p[0], *[a + b for a, b in zip(p[1:], off, strict=True)])
            if q in table:
                expected.append((k, table[q], o))
    got = [
        (k, i, o)
        for k, (ii, oo) in enumerate(fast.pairs())
        for i, o in zip(ii.tolist(), oo.tolist())
    ]
    assert got == expected


def test_patch_rows_dictionary_route_equals_list_route() -> None:
    in_c = random_coords(20, 2, 3, 3)
    fast = small_kernel_map(in_c, in_c, KernelGenerator(3, dimension=2).region_offsets, 4, None)
    rows = fast.patch_rows()
    fast._patch_rows = None  # rebuilt from the pairs by `KernelMap.patch_rows`
    assert torch.equal(fast.patch_rows(), rows)
    k = fast.kernel_volume
    for kk, (ii, oo) in enumerate(fast.pairs()):
        for i, o in zip(ii.tolist(), oo.tolist(), strict=True):
            assert rows[o * k + kk] == i
    filled = sum(fast.counts)
    assert int((rows == fast.num_in).sum()) == fast.num_out * k - filled


def test_small_routes_keep_the_overflow_error() -> None:
    huge = torch.tensor([[0, 0, 0, 0], [1, 2**40, -(2**40), 2**30]])
    with pytest.raises(SparseInputError, match="too large to index"):
        small_unique_rows(huge)
    offsets = KernelGenerator(3, dimension=3).region_offsets
    with pytest.raises(SparseInputError, match="too large to index"):
        kernel_map.build_kernel_map(huge, huge, offsets, same_set=True)


def _grads(x: ME.SparseTensor, conv: ME.MinkowskiConvolution, small: bool, monkeypatch):
    with monkeypatch.context() as m:
        if not small:
            m.setattr(conv_function, "SMALL_PATCH_ELEMENTS", 0)
        feats = x.F.detach().clone().requires_grad_(True)
        conv.kernel.grad = None
        y = conv(ME.SparseTensor(feats, coordinates=x.C, tensor_stride=x.tensor_stride))
        (y.F * torch.linspace(-1, 1, y.F.numel(), dtype=y.F.dtype).view_as(y.F)).sum().backward()
        return y.F.detach(), feats.grad, conv.kernel.grad.clone()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("kernel", "stride", "transpose"), [(3, 1, False), (3, 2, False), (2, 2, False), (2, 2, True)]
)
def test_small_convolution_equals_large_routes(
    seed: int, kernel: int, stride: int, transpose: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forward and both gradients of the patch route equal the general routes' (float64)."""
    ts = 2 if transpose else 1
    coords = random_coords(30, 3, 4, seed)
    coords[:, 1:] *= ts
    feats = torch.randn(len(coords), 3, generator=torch.Generator().manual_seed(seed)).double()
    x = ME.SparseTensor(feats, coordinates=coords, tensor_stride=ts)
    layer = ME.MinkowskiConvolutionTranspose if transpose else ME.MinkowskiConvolution
    conv = layer(3, 4, kernel_size=kernel, stride=stride, dimension=3).double()
    kmap_volume = len(coords) * conv.kernel_generator.kernel_volume * 3
    assert kmap_volume <= conv_function.SMALL_PATCH_ELEMENTS  # the small route is taken
    fast = _grads(x, conv, True, monkeypatch)
    slow = _grads(x, conv, False, monkeypatch)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b)
        assert a.abs().sum() > 0  # something was compared


def test_small_convolution_under_autocast_matches_large_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coords = random_coords(30, 3, 4, 7)
    x = ME.SparseTensor(torch.randn(len(coords), 8), coordinates=coords)
    conv = ME.MinkowskiConvolution(8, 8, kernel_size=3, dimension=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = _grads(x, conv, True, monkeypatch)
        slow = _grads(x, conv, False, monkeypatch)
    assert fast[0].dtype == torch.bfloat16 and fast[2].dtype == torch.float32
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a.float(), b.float(), rtol=0.05, atol=0.05)


@pytest.mark.parametrize("n", [1, 5, hashing.SMALL_ROWS, hashing.SMALL_ROWS + 1])
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_lowest_batch_index_equals_tensor_min(n: int, dtype: torch.dtype) -> None:
    from stseg_models.sparse.validation import _lowest_batch_index, check_coordinates

    for seed in SEEDS:
        coords = random_coords(n, 3, 50, seed, unique=False).to(dtype)
        coords[:, 0] = torch.randint(-3, 4, (n,), generator=torch.Generator().manual_seed(seed))
        low = _lowest_batch_index(coords)
        assert isinstance(low, int)
        assert low == int(coords[:, 0].min())
        if low < 0:
            with pytest.raises(SparseInputError, match="non-negative"):
                check_coordinates(coords, 3, n)
        else:
            assert check_coordinates(coords, 3, n) is coords


def test_cast_returns_the_same_tensor_as_to() -> None:
    x = torch.rand(4, 3, dtype=torch.float64)
    assert conv_function._cast(x, torch.float64) is x.to(torch.float64)
    y = conv_function._cast(x, torch.float32)
    assert y.dtype == torch.float32 and torch.equal(y, x.to(torch.float32))
