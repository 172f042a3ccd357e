"""`ME.utils` voxelization and hashing against slow, obvious Python references.

sparse_quantize: every flag combination, numpy and torch, batched and unbatched coordinates, no /
scalar / per-axis quantization size; the kept row of a voxel is its first point, voxels in order of
first occurrence, features and labels taken from the kept row (MinkowskiEngine 0.5.4 semantics).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.utils import (
    fnv_hash_vec,
    ravel_hash_vec,
    sparse_quantize,
    unique_coordinate_map,
)


def ref_cells(coords: np.ndarray, size: float | list[float] | None, float32: bool) -> list[tuple]:
    """floor(c / size) row by row, with the arithmetic of the input's precision."""
    cast = np.float32 if float32 else np.float64
    cells = []
    for row in coords.tolist():
        cell = []
        for j, v in enumerate(row):
            if size is None or size == 1:
                cell.append(math.floor(v))
            else:
                q = size[j] if isinstance(size, list) else size
                cell.append(math.floor(float(cast(v) / cast(q))))
        cells.append(tuple(cell))
    return cells


def ref_unique(cells: list[tuple]) -> tuple[list[int], list[int]]:
    """(first row of each distinct cell in order of appearance, each row's voxel number)."""
    first: dict[tuple, int] = {}
    keep: list[int] = []
    for i, cell in enumerate(cells):
        if cell not in first:
            first[cell] = len(keep)
            keep.append(i)
    return keep, [first[c] for c in cells]


def make_points(seed: int, n: int, batched: bool, integer: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xyz = rng.integers(-3, 4, (n, 3)) if integer else rng.uniform(-2.0, 2.0, (n, 3))
    if batched:
        xyz = np.concatenate([rng.integers(0, 3, (n, 1)), xyz], axis=1)
    return xyz.astype(np.int32) if integer else xyz


FLAGS = [
    (idx, inv, maps)
    for idx, inv, maps in itertools.product([False, True], repeat=3)
    if idx or not inv  # return_inverse needs return_index
]


@pytest.mark.parametrize("container", ["numpy", "torch"])
@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize(
    "with_feats,with_labels", [(False, False), (True, False), (True, True), (False, True)]
)
@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "idx{}-inv{}-maps{}".format(*map(int, f)))
def test_sparse_quantize_outputs_match_reference(
    container: str, batched: bool, with_feats: bool, with_labels: bool, flags: tuple
) -> None:
    return_index, return_inverse, maps_only = flags
    coords_np = make_points(3, 60, batched, integer=True)
    rng = np.random.default_rng(4)
    feats_np = rng.normal(size=(60, 2)).astype(np.float32)
    labels_np = rng.integers(0, 5, 60).astype(np.int64)
    as_c = torch.from_numpy if container == "torch" else (lambda a: a)
    coords, feats, labels = as_c(coords_np), as_c(feats_np), as_c(labels_np)
    out = sparse_quantize(
        coords,
        feats if with_feats else None,
        labels if with_labels else None,
        return_index=return_index,
        return_inverse=return_inverse,
        return_maps_only=maps_only,
    )
    keep, inverse = ref_unique(ref_cells(coords_np, None, False))
    assert len(keep) < 60  # the case really has duplicates
    expected: list = []
    if maps_only:
        expected = [("map", keep)] + ([("inv", inverse)] if return_inverse else [])
    else:
        expected.append(("coords", [list(map(int, coords_np[i])) for i in keep]))
        if with_feats:
            expected.append(("feats", feats_np[keep]))
        if with_labels:
            expected.append(("labels", labels_np[keep]))
        if return_index:
            expected.append(("map", keep))
        if return_inverse:
            expected.append(("inv", inverse))
    got = [out] if len(expected) == 1 else list(out)
    assert len(got) == len(expected)
    for value, (kind, want) in zip(got, expected, strict=True):
        if kind == "coords":
            assert isinstance(value, torch.Tensor) and value.dtype == torch.int32
            assert value.tolist() == want
        elif kind in ("map", "inv"):
            assert isinstance(value, torch.Tensor) and value.dtype == torch.int64
            assert value.tolist() == want
        else:  # features and labels keep their container and dtype
            assert type(value) is type(feats if kind == "feats" else labels)
            assert value.dtype == (feats if kind == "feats" else labels).dtype
            np.testing.assert_array_equal(np.asarray(value), want)


@pytest.mark.parametrize("container", ["numpy", "torch"])
@pytest.mark.parametrize("size", [None, 1, 0.3, [0.25, 0.5, 0.7]], ids=str)
def test_quantization_size_floors_like_reference(container: str, size: object) -> None:
    coords_np = make_points(7, 200, batched=False, integer=False)
    if container == "torch":
        coords = torch.from_numpy(coords_np.astype(np.float32))
        ref_input, float32 = coords.double().numpy(), True
    else:
        coords, ref_input, float32 = coords_np, coords_np, False
    got, index, inverse = sparse_quantize(
        coords, quantization_size=size, return_index=True, return_inverse=True
    )
    # a scalar size divides float32 torch input in float32; a per-axis list as a float32 tensor
    cells = ref_cells(ref_input, size, float32)
    keep, inv = ref_unique(cells)
    assert got.tolist() == [list(cells[i]) for i in keep]
    assert index.tolist() == keep and inverse.tolist() == inv
    assert torch.equal(got[inverse], torch.tensor(cells, dtype=torch.int32))


def test_negative_float_coordinates_floor_not_truncate() -> None:
    got = sparse_quantize(np.array([[-0.5, 0.5], [-1.0, 1.9], [-0.1, 0.0]]))
    assert got.tolist() == [[-1, 0], [-1, 1]]


def test_labels_come_from_the_kept_row_without_vote() -> None:
    # MinkowskiEngine 0.5.4: ignore_label is not applied, the first point's label is kept
    coords = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]], dtype=np.int32)
    labels = np.array([3, 4, 7, 7, 2], dtype=np.int32)
    _, out = sparse_quantize(coords, labels=labels, ignore_label=255)
    assert out.tolist() == [3, 7] and out.dtype == np.int32


def test_torch_labels_and_features_keep_device_and_dtype() -> None:
    coords = torch.tensor([[0, 1], [0, 1], [2, 2]])
    feats = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    labels = torch.tensor([5, 6, 7], dtype=torch.int16)
    c, f, lb = sparse_quantize(coords, feats, labels)
    assert c.dtype == torch.int32 and f.dtype == torch.float64 and lb.dtype == torch.int16
    assert f.flatten().tolist() == [1.0, 3.0] and lb.tolist() == [5, 7]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"coordinates": [[0, 0]]}, "numpy array or a torch tensor"),
        ({"coordinates": np.zeros(3)}, "2D"),
        ({"coordinates": np.zeros((3, 2)), "features": np.zeros((2, 1))}, "rows"),
        ({"coordinates": np.zeros((3, 2)), "labels": np.zeros(4)}, "labels"),
        ({"coordinates": np.zeros((3, 2)), "return_inverse": True}, "return_index"),
        ({"coordinates": np.zeros((3, 2)), "quantization_size": [1.0]}, "columns"),
        ({"coordinates": np.zeros((3, 2)), "quantization_size": "x"}, "number or a sequence"),
        ({"coordinates": np.zeros((3, 2)), "quantization_size": 0}, "positive"),
        ({"coordinates": np.array([[np.nan, 0.0]])}, "NaN"),
        ({"coordinates": np.zeros((3, 2)), "device": "tpu"}, "device"),
    ],
)
def test_sparse_quantize_rejects_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(SparseInputError, match=match):
        sparse_quantize(**kwargs)


def test_unique_coordinate_map_matches_reference_and_checks_stride() -> None:
    coords = torch.from_numpy(make_points(11, 80, batched=True, integer=True))
    keep, inverse = ref_unique([tuple(r) for r in coords.tolist()])
    unique, inv = unique_coordinate_map(coords, tensor_stride=2)
    assert unique.dtype == torch.int64 and unique.tolist() == keep and inv.tolist() == inverse
    assert torch.equal(coords[unique][inv], coords)
    with pytest.raises(SparseInputError, match="tensor_stride"):
        unique_coordinate_map(coords, tensor_stride=0)
    with pytest.raises(SparseInputError, match="integer"):
        unique_coordinate_map(coords.float())


def ref_fnv(row: list[int]) -> int:
    h = 14695981039346656037
    for v in row:
        h = ((h * 1099511628211) % 2**64) ^ (v % 2**64)
    return h


def ref_ravel(rows: list[list[int]]) -> list[int]:
    lo = [min(c) for c in zip(*rows, strict=True)]
    radix = [max(c) - m + 1 for c, m in zip(zip(*rows, strict=True), lo, strict=True)]
    keys = []
    for row in rows:
        key = 0
        for v, m, r in zip(row, lo, radix, strict=True):
            key = key * r + (v - m)
        keys.append(key % 2**64)
    return keys


def test_hashes_match_reference() -> None:
    rows = make_points(5, 50, batched=True, integer=True)
    fnv = fnv_hash_vec(rows)
    ravel = ravel_hash_vec(rows)
    assert fnv.dtype == np.uint64 and ravel.dtype == np.uint64
    assert [int(v) for v in fnv] == [ref_fnv(r) for r in rows.tolist()]
    assert [int(v) for v in ravel] == ref_ravel(rows.tolist())
    # ravel keys are injective over the box; equal rows share a key
    assert len(set(ravel.tolist())) == len({tuple(r) for r in rows.tolist()})
    np.testing.assert_array_equal(fnv_hash_vec(torch.from_numpy(rows)), fnv)
    with pytest.raises(SparseInputError, match="2D"):
        ravel_hash_vec(np.zeros(3))


def test_utils_is_the_top_level_module() -> None:
    assert ME.utils.sparse_quantize is sparse_quantize
    assert set(ME.utils.__all__) == {
        "SparseCollation", "batch_sparse_collate", "batched_coordinates", "fnv_hash_vec",
        "kaiming_normal_", "ravel_hash_vec", "sparse_collate", "sparse_quantize", "summary",
        "unique_coordinate_map",
    }  # fmt: skip


@pytest.mark.gpu
def test_sparse_quantize_on_cuda_equals_cpu() -> None:
    coords = torch.from_numpy(make_points(13, 500, batched=True, integer=False))
    feats = torch.randn(500, 3)
    cpu = sparse_quantize(
        coords, feats, quantization_size=0.5, return_index=True, return_inverse=True
    )
    gpu = sparse_quantize(
        coords.cuda(),
        feats,
        quantization_size=0.5,
        return_index=True,
        return_inverse=True,
        device="cuda",
    )
    assert (
        gpu[0].device.type == "cuda" and gpu[1].device.type == "cpu"
    )  # features stay where they are
    for a, b in zip(cpu, gpu, strict=True):
        assert torch.equal(a, b.cpu())
