"""CoordinateManager's MinkowskiEngine-facing methods, SparseTensor conversions, TensorField extras
and the shared-manager operation mode, checked against slow obvious references."""

from __future__ import annotations

import itertools

import pytest
import torch

import stseg_models.sparse as ME


def random_tensor(dim: int = 3, n: int = 50, seed: int = 0, stride: int = 1) -> ME.SparseTensor:
    g = torch.Generator().manual_seed(seed)
    pts = torch.cat(
        [
            torch.randint(0, 3, (n, 1), generator=g),
            torch.randint(0, 6, (n, dim), generator=g) * stride,
        ],
        1,
    )
    coords = torch.unique(pts, dim=0).int()[
        torch.randperm(len(torch.unique(pts, dim=0)), generator=g)
    ]
    return ME.SparseTensor(torch.randn(len(coords), 2, generator=g), coords, tensor_stride=stride)


def cube(k: int, dim: int) -> list[tuple[int, ...]]:
    r = range(-(k // 2), k // 2 + 1) if k % 2 else range(k)
    return [tuple(reversed(p)) for p in itertools.product(*[r] * dim)]


@pytest.mark.parametrize("dim", [3, 4])
@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (2, 2), (3, 2)])
def test_kernel_map_dict_equals_reference(dim: int, kernel: int, stride: int) -> None:
    x = random_tensor(dim, 40, seed=kernel)
    m = x.coordinate_manager
    out_key = m.stride(x.coordinate_map_key, stride) if stride > 1 else x.coordinate_map_key
    maps = m.kernel_map(x.coordinate_map_key, out_key, stride=stride, kernel_size=kernel)
    src = {tuple(c): i for i, c in enumerate(x.C.tolist())}
    want: dict[int, set[tuple[int, int]]] = {}
    for o_row, o in enumerate(m.get_coordinates(out_key).tolist()):
        for k, off in enumerate(cube(kernel, dim)):
            n = (o[0], *[o[i + 1] + off[i] for i in range(dim)])
            if n in src:
                want.setdefault(k, set()).add((src[n], o_row))
    assert set(maps) == set(want) and list(maps) == sorted(maps)
    for k, pairs in maps.items():
        assert pairs.dtype == torch.int32 and pairs.shape[0] == 2
        assert set(map(tuple, pairs.t().tolist())) == want[k]
    # transposed: the same pairs, rows swapped; keys as tensor strides work too
    tr = m.kernel_map(
        out_key, x.coordinate_map_key, stride=stride, kernel_size=kernel, is_transpose=True
    )
    assert {k: set(map(tuple, v.flip(0).t().tolist())) for k, v in tr.items()} == want
    by_stride = m.kernel_map(1, stride, stride=stride, kernel_size=kernel)
    assert {k: v.tolist() for k, v in by_stride.items()} == {k: v.tolist() for k, v in maps.items()}


def test_pool_kernel_map_is_one_stride_map() -> None:
    x = random_tensor(3, 40, seed=3)
    m = x.coordinate_manager
    coarse = m.stride(x.coordinate_map_key, 2)
    pooled = m.kernel_map(x.coordinate_map_key, coarse, stride=2, kernel_size=2, is_pool=True)
    rows, parents = m.stride_map(x.coordinate_map_key, coarse)
    assert list(pooled) == [0]
    assert set(map(tuple, pooled[0].t().tolist())) == set(zip(rows.tolist(), parents.tolist()))


def test_stride_and_origin_maps() -> None:
    x = random_tensor(3, 60, seed=4)
    m = x.coordinate_manager
    coarse = m.stride(x.coordinate_map_key, [2, 2, 2])
    assert m.stride(x.coordinate_map_key, 2) == coarse  # cached
    cc = {tuple(c): i for i, c in enumerate(m.get_coordinates(coarse).tolist())}
    rows, parents = m.stride_map(x.coordinate_map_key, coarse)
    for r, p in zip(rows.tolist(), parents.tolist(), strict=True):
        c = x.C[r].tolist()
        assert cc[(c[0], *[v // 2 * 2 for v in c[1:]])] == p
    assert sorted(rows.tolist()) == list(range(len(x)))
    batches, per_batch = m.origin_map(x.coordinate_map_key)
    assert batches.tolist() == sorted(set(x.C[:, 0].tolist()))
    for b, r in zip(batches.tolist(), per_batch, strict=True):
        assert r.tolist() == (x.C[:, 0] == b).nonzero().flatten().tolist()
    origin = m.origin()
    assert origin.tensor_stride == (0, 0, 0) and m.get_coordinates(origin)[:, 1:].abs().sum() == 0
    assert m.number_of_unique_batch_indices() == len(batches)
    assert [p.tolist() for p in x.decomposition_permutations] == [r.tolist() for r in per_batch]
    for b, (c, f) in enumerate(zip(*x.decomposed_coordinates_and_features, strict=True)):
        assert torch.equal(c, x.coordinates_at(b)) and torch.equal(f, x.features_at(b))


def test_insert_union_unique_key() -> None:
    m = ME.CoordinateManager(D=2)
    key, (unique, inverse) = m.insert_and_map(
        torch.IntTensor([[0, 5, 5], [0, 5, 5], [0, 1, 1]]), 1, "a"
    )
    assert key == ME.CoordinateMapKey([1, 1], "a") and unique.tolist() == [0, 2]
    assert inverse.tolist() == [0, 0, 1] and m.size(key) == 2
    other, _ = m.insert_and_map(torch.IntTensor([[0, 1, 1], [0, 7, 7]]), [1, 1], "a")
    assert other != key and other.tensor_stride == (1, 1)  # a fresh id, as MinkowskiEngine
    out = ME.CoordinateMapKey(3)
    assert not out.is_key_set()
    maps = m.union_map([key, other], out)
    assert out.is_key_set() and m.get_coordinates(out).tolist() == [[0, 5, 5], [0, 1, 1], [0, 7, 7]]
    assert [t.tolist() for t in maps] == [[[0, 1], [0, 1]], [[0, 1], [1, 2]]]
    stride, sid = m.get_unique_coordinate_map_key([1, 1])
    assert stride == [1, 1] and ME.CoordinateMapKey(stride, sid) not in m.get_coordinate_map_keys()
    assert repr(ME.CoordinateMapKey([2, 2], "")) == "coordinate map key:[2, 2]"


def test_dense_and_torch_sparse_follow_minkowski_rules() -> None:
    c = torch.IntTensor([[0, 2, 4], [0, 4, 2], [1, 6, 6]])
    x = ME.SparseTensor(torch.tensor([[1.0], [2.0], [3.0]]), c, tensor_stride=2)
    dense, mn, stride = x.dense()
    # indexed by coordinate / stride from the origin, not shifted by the minimum
    assert dense.shape == (2, 1, 4, 4) and mn.tolist() == [[2, 2]] and stride.tolist() == [2, 2]
    assert dense[0, 0, 1, 2] == 1 and dense[0, 0, 2, 1] == 2 and dense[1, 0, 3, 3] == 3
    shifted, mn2, _ = x.dense(min_coordinate=torch.IntTensor([2, 2]))
    assert shifted.shape == (2, 1, 3, 3) and mn2.tolist() == [[2, 2]] and shifted[0, 0, 0, 1] == 1
    full, _, _ = x.dense(contract_stride=False)
    assert full.shape == (2, 1, 7, 7) and full[1, 0, 6, 6] == 3
    sized, _, _ = x.dense(shape=torch.Size([2, 5, 5, 5]))
    assert sized.shape == (2, 1, 5, 5)
    with pytest.raises(ME.SparseInputError, match="divisible"):
        x.dense(min_coordinate=torch.IntTensor([1, 0]))
    neg = ME.SparseTensor(torch.ones(1, 1), torch.IntTensor([[0, -1, 0]]))
    with pytest.raises(ME.SparseInputError, match="negative"):
        neg.dense()
    sp, smin, _ = x.sparse()
    assert sp.is_sparse and sp.shape == (2, 3, 3, 1) and smin.tolist() == [[1, 1]]
    assert torch.equal(sp.to_dense()[:, :, :, 0], shifted[:, 0])
    g = torch.ones(2, 1, requires_grad=True)
    y = ME.SparseTensor(g, torch.IntTensor([[0, 0, 0], [0, 1, 1]]))
    (y.dense()[0] * 3).sum().backward()
    assert g.grad.tolist() == [[3.0], [3.0]]


def test_tensor_field_quantisation_and_maps() -> None:
    pts = torch.tensor(
        [[0, 0.2, 0.3], [0, 0.7, 0.1], [0, 1.5, 2.5], [1, 0.0, 0.0]], dtype=torch.float64
    )
    field = ME.TensorField(torch.tensor([[1.0], [2.0], [3.0], [4.0]]), pts)
    s1 = field.sparse()
    assert s1.C.tolist() == [[0, 0, 0], [0, 1, 2], [1, 0, 0]] and s1.F.flatten().tolist() == [
        1.5,
        3,
        4,
    ]
    s2 = field.sparse(2, quantization_mode=ME.SparseTensorQuantizationMode.UNWEIGHTED_SUM)
    assert s2.C.tolist() == [[0, 0, 0], [0, 0, 2], [1, 0, 0]] and s2.F.flatten().tolist() == [
        3,
        3,
        4,
    ]
    assert field.inverse_mapping(s1.coordinate_map_key).tolist() == [0, 0, 1, 2]
    m = field.coordinate_manager
    rows, points = m.field_to_sparse_map(field.coordinate_field_map_key, s1.coordinate_map_key)
    assert rows.tolist() == [0, 0, 1, 2] and points.tolist() == [0, 1, 2, 3]
    unique, inverse = m.get_field_to_sparse_map(
        field.coordinate_field_map_key, s1.coordinate_map_key
    )
    assert unique.tolist() == [0, 2, 3] and inverse.tolist() == [0, 0, 1, 2]
    assert m.exists_field_to_sparse(field.coordinate_field_map_key, s1.coordinate_map_key)
    # a stride-2 tensor computed from s1 still maps every point (through its voxel)
    coarse = ME.MinkowskiAvgPooling(kernel_size=2, stride=2, dimension=2)(s1)
    assert field.inverse_mapping(coarse.coordinate_map_key).tolist() == [0, 0, 1, 2]
    sliced = coarse.slice(field)
    assert sliced.F.flatten().tolist() == [1.5, 1.5, 3.0, 4.0]
    cat = s1.cat_slice(field)
    assert cat.F.tolist() == [[1.5, 1], [1.5, 2], [3, 3], [4, 4]]
    rebuilt = ME.TensorField(
        torch.zeros(4, 1),
        coordinate_field_map_key=field.coordinate_field_map_key,
        coordinate_manager=m,
    )
    assert torch.equal(rebuilt.C, pts)
    onto = field.sparse(coordinate_map_key=s2.coordinate_map_key)
    assert onto.F.flatten().tolist() == [1.5, 3.0, 4.0]  # average of the points in each voxel


def test_slice_with_the_original_sparse_tensor() -> None:
    x = ME.SparseTensor(
        torch.arange(4.0).reshape(4, 1),
        torch.IntTensor([[0, 0, 0], [0, 0, 0], [0, 1, 1], [0, 1, 1]]),
    )
    out = x.slice(x)
    assert out.F.flatten().tolist() == [0, 0, 2, 2] and out.C.tolist()[1] == [0, 0, 0]


def test_share_coordinate_manager_mode() -> None:
    mode = ME.sparse_tensor_operation_mode()
    assert mode == ME.SparseTensorOperationMode.SEPARATE_COORDINATE_MANAGER
    coords = torch.IntTensor([[0, 0, 0], [0, 1, 1]])
    try:
        ME.set_sparse_tensor_operation_mode(ME.SparseTensorOperationMode.SHARE_COORDINATE_MANAGER)
        a = ME.SparseTensor(torch.ones(2, 1), coords)
        b = ME.SparseTensor(torch.ones(2, 1), coords)
        f = ME.TensorField(torch.ones(2, 1), coords.double())
        assert a.coordinate_manager is b.coordinate_manager is f.coordinate_manager
        assert ME.global_coordinate_manager() is a.coordinate_manager
        assert a.coordinate_map_key != b.coordinate_map_key
        assert torch.equal((a + b.F).F, a.F + b.F)  # same-manager arithmetic works
        ME.clear_global_coordinate_manager()
        assert ME.global_coordinate_manager() is None
        c = ME.SparseTensor(torch.ones(2, 1), coords)
        assert c.coordinate_manager is not a.coordinate_manager
        with pytest.raises(ME.SparseInputError, match="dimensional"):
            ME.SparseTensor(torch.ones(1, 1), torch.IntTensor([[0, 0, 0, 0]]))
        own = ME.CoordinateManager(D=2)
        ME.set_global_coordinate_manager(own)
        assert ME.SparseTensor(torch.ones(2, 1), coords).coordinate_manager is own
    finally:
        ME.clear_global_coordinate_manager()
        ME.set_sparse_tensor_operation_mode(mode)
    assert ME.SparseTensor(torch.ones(2, 1), coords).coordinate_manager is not own
    with pytest.raises(ME.SparseInputError, match="SparseTensorOperationMode"):
        ME.set_sparse_tensor_operation_mode(1)
