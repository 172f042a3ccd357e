"""SparseTensor construction, duplicate handling, queries and input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import stseg_models.sparse as ME


def _coords(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int32)


def test_properties() -> None:
    c = _coords([[0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0]])
    x = ME.SparseTensor(torch.arange(6.0).reshape(3, 2), c)
    assert torch.equal(x.C, c)
    assert x.F.shape == (3, 2) and x.D == 3 and x.dimension == 3
    assert x.tensor_stride == [1, 1, 1]
    assert isinstance(x.coordinate_manager, ME.CoordinateManager)
    assert x.C.dtype == torch.int32
    assert [len(f) for f in x.decomposed_features] == [2, 1]
    assert torch.equal(x.coordinates_at(1), _coords([[0, 2, 0]]))


def test_duplicates_random_subsample_keeps_first_occurrence() -> None:
    c = _coords([[0, 1, 1], [0, 2, 2], [0, 1, 1], [0, 3, 3], [0, 2, 2]])
    f = torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0]])
    x = ME.SparseTensor(f, c)
    assert x.C.tolist() == [[0, 1, 1], [0, 2, 2], [0, 3, 3]]
    assert x.F.flatten().tolist() == [1.0, 2.0, 4.0]
    assert x.inverse_mapping.tolist() == [0, 1, 0, 2, 1]
    assert x.unique_index.tolist() == [0, 1, 3]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (ME.SparseTensorQuantizationMode.UNWEIGHTED_AVERAGE, [2.0, 3.5, 4.0]),
        (ME.SparseTensorQuantizationMode.UNWEIGHTED_SUM, [4.0, 7.0, 4.0]),
        (ME.SparseTensorQuantizationMode.MAX_POOL, [3.0, 5.0, 4.0]),
    ],
)
def test_duplicates_merge_modes(
    mode: ME.SparseTensorQuantizationMode, expected: list[float]
) -> None:
    c = _coords([[0, 1, 1], [0, 2, 2], [0, 1, 1], [0, 3, 3], [0, 2, 2]])
    f = torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0]])
    assert ME.SparseTensor(f, c, quantization_mode=mode).F.flatten().tolist() == expected


def test_no_quantization_rejects_duplicates() -> None:
    with pytest.raises(ME.SparseInputError, match="duplicate"):
        ME.SparseTensor(
            torch.ones(2, 1),
            _coords([[0, 1], [0, 1]]),
            quantization_mode=ME.SparseTensorQuantizationMode.NO_QUANTIZATION,
        )


def test_numpy_coordinates_accepted() -> None:
    x = ME.SparseTensor(torch.ones(2, 1), np.array([[0, 1, 2], [0, 3, 4]], dtype=np.int64))
    assert x.C.tolist() == [[0, 1, 2], [0, 3, 4]]


@pytest.mark.parametrize(
    ("feats", "coords", "match"),
    [
        (torch.ones(2, 1), torch.tensor([[0, 0.5, float("nan")], [0, 1.0, 1.0]]), "NaN"),
        (torch.ones(2, 1), torch.tensor([[0, 0.5, float("inf")], [0, 1.0, 1.0]]), "infinite"),
        (torch.ones(2, 1), torch.tensor([[0, 0.0, 3e9], [0, 1.0, 1.0]]), "int32"),
        (torch.ones(2, 1), torch.tensor([[-0.5, 0.0, 1.0], [0, 1.0, 1.0]]), "non-negative"),
        (torch.ones(2, 1), torch.tensor([[0, 1], [0, 2]]).unsqueeze(0), "2D"),
        (torch.ones(2, 1), torch.tensor([[0], [0]]), "spatial"),
        (torch.ones(2, 1), torch.tensor([[-1, 0, 0], [0, 0, 0]]), "non-negative"),
        (torch.ones(3, 1), torch.tensor([[0, 0, 0], [0, 1, 0]]), "rows"),
        (torch.ones(2), torch.tensor([[0, 0, 0], [0, 1, 0]]), "features"),
        ("abc", torch.tensor([[0, 0, 0]]), "features"),
        (torch.ones(1, 1), [[0, 0, 0]], "coordinates"),
    ],
)
def test_bad_input_raises(feats: object, coords: object, match: str) -> None:
    with pytest.raises(ME.SparseInputError, match=match):
        ME.SparseTensor(feats, coords)


@pytest.mark.parametrize("dim", [3, 4])
def test_float_coordinates_floored_with_minkowski_warning(dim: int) -> None:
    """As MinkowskiEngine 0.5.4: float coordinates are floored (not truncated) to int32, with its
    warning, and points falling into one voxel are merged by the quantization mode."""
    g = torch.Generator().manual_seed(dim)
    pts = torch.rand(40, dim, generator=g, dtype=torch.float64) * 8 - 4  # negative ones too
    coords = torch.cat([torch.randint(0, 2, (40, 1), generator=g).double(), pts], 1)
    feats = torch.randn(40, 2, generator=g, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"coordinates implicitly converted to torch\.IntTensor"):
        x = ME.SparseTensor(
            feats, coords, quantization_mode=ME.SparseTensorQuantizationMode.UNWEIGHTED_AVERAGE
        )
    ref = ME.SparseTensor(
        feats, torch.floor(coords).int(),
        quantization_mode=ME.SparseTensorQuantizationMode.UNWEIGHTED_AVERAGE,
    )  # fmt: skip
    assert x.C.dtype == torch.int32 and torch.equal(x.C, ref.C) and torch.equal(x.F, ref.F)
    assert int(x.C[:, 1:].min()) < 0  # -0.5 -> -1, not 0
    with pytest.warns(UserWarning, match="implicitly converted"):
        np_x = ME.SparseTensor(feats, coords.numpy().astype(np.float32))
    assert np_x.C.shape[1] == dim + 1


def test_integer_coordinates_do_not_warn(recwarn: pytest.WarningsRecorder) -> None:
    ME.SparseTensor(torch.ones(2, 1), torch.tensor([[0, 1, 2], [0, 3, 4]], dtype=torch.int64))
    ME.SparseTensor(torch.ones(2, 1), torch.tensor([[0, 1, 2], [0, 3, 4]], dtype=torch.int32))
    assert not [w for w in recwarn if "implicitly converted" in str(w.message)]


def test_wrong_width_for_manager() -> None:
    x = ME.SparseTensor(torch.ones(1, 1), _coords([[0, 0, 0, 0]]))
    with pytest.raises(ME.SparseInputError, match="1 \\+ D = 4"):
        ME.SparseTensor(
            torch.ones(1, 1), _coords([[0, 0, 0]]), coordinate_manager=x.coordinate_manager
        )


def test_huge_extent_raises() -> None:
    c = torch.tensor([[0, 0, 0, 0, 0], [0, 2**20, 2**20, 2**20, 2**20]])
    with pytest.raises(ME.SparseInputError, match="too large"):
        ME.SparseTensor(torch.ones(2, 1), c)


def test_features_at_coordinates_and_dense() -> None:
    c = _coords([[0, 0, 0], [0, 2, 4], [1, 2, 0]])
    x = ME.SparseTensor(torch.tensor([[1.0], [2.0], [3.0]]), c, tensor_stride=2)
    # MinkowskiEngine 0.5.4 interpolates n-linearly (weights 0.75 * 0.05 and 0.5 * 0.5 here)
    q = torch.tensor([[0, 2.5, 5.9], [1, 3.0, 1.0], [0, 6.0, 6.0], [0, 2.0, 4.0]])
    got = x.features_at_coordinates(q).flatten()
    assert torch.allclose(got, torch.tensor([2.0 * 0.0375, 3.0 * 0.25, 0.0, 2.0]))
    dense, mn, stride = x.dense()
    assert dense.shape == (2, 1, 2, 3) and mn.tolist() == [[0, 0]] and stride.tolist() == [2, 2]
    assert dense[0, 0, 1, 2] == 2.0 and dense[1, 0, 1, 0] == 3.0 and dense.sum() == 6.0


def test_arithmetic_same_and_union() -> None:
    a = ME.SparseTensor(torch.tensor([[1.0], [2.0]]), _coords([[0, 0], [0, 1]]))
    b = ME.SparseTensor(
        torch.tensor([[10.0], [20.0]]),
        coordinate_map_key=a.coordinate_map_key,
        coordinate_manager=a.coordinate_manager,
    )
    assert (a + b).F.flatten().tolist() == [11.0, 22.0]
    assert (a * 2).F.flatten().tolist() == [2.0, 4.0]
    c = ME.SparseTensor(
        torch.tensor([[5.0]]), _coords([[0, 7]]), coordinate_manager=a.coordinate_manager
    )
    u = a + c
    assert u.C.tolist() == [[0, 0], [0, 1], [0, 7]] and u.F.flatten().tolist() == [1.0, 2.0, 5.0]
    other = ME.SparseTensor(torch.tensor([[5.0]]), _coords([[0, 7]]))
    with pytest.raises(ME.SparseInputError, match="different coordinate managers"):
        a + other


def test_to_sparse_roundtrip() -> None:
    dense = torch.zeros(1, 2, 3, 3)
    dense[0, :, 1, 2] = torch.tensor([1.0, 2.0])
    x = ME.to_sparse(dense)
    assert x.C.tolist() == [[0, 1, 2]] and x.F.tolist() == [[1.0, 2.0]]
