"""Native ``ME.utils`` and plain top-level names == MinkowskiEngine 0.5.4's; `nox -s compat`.

Same inputs through both, outputs compared exactly: values, containers, dtypes and row order
(MinkowskiEngine's CPU coordinate map keeps each voxel's first point, voxels in order of first
occurrence, which defines the order compared here). Skipped unless MinkowskiEngine imports; with
STSEG_REQUIRE_MINKOWSKI=1 (set by `nox -s compat`) a missing MinkowskiEngine fails instead.
"""

from __future__ import annotations

import importlib
import itertools
from typing import Any

import numpy as np
import pytest
import torch

import stseg_models.sparse as NATIVE
from stseg_models.testing import minkowski_or_skip

pytestmark = pytest.mark.minkowski

MINK = minkowski_or_skip()


def assert_same(native: Any, mink: Any) -> None:
    """Equal structure, container types, dtypes and values."""
    if isinstance(mink, (tuple, list)):
        assert type(native) is type(mink) and len(native) == len(mink)
        for a, b in zip(native, mink, strict=True):
            assert_same(a, b)
    elif isinstance(mink, torch.Tensor):
        assert isinstance(native, torch.Tensor), type(native)
        assert native.dtype == mink.dtype and native.shape == mink.shape
        assert torch.equal(native, mink)
    elif isinstance(mink, np.ndarray):
        assert isinstance(native, np.ndarray), type(native)
        assert native.dtype == mink.dtype
        np.testing.assert_array_equal(native, mink)
    else:
        assert native == mink


def points(seed: int, n: int = 200, batched: bool = False, integer: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xyz = (
        rng.integers(-4, 5, (n, 3)).astype(np.int32) if integer else rng.uniform(-1.5, 1.5, (n, 3))
    )
    if batched:
        batch = rng.integers(0, 3, (n, 1)).astype(xyz.dtype)
        xyz = np.concatenate([batch, xyz], axis=1)
    return xyz


FLAGS = [f for f in itertools.product([False, True], repeat=3) if f[0] or not f[1]]


@pytest.mark.me_names("utils.sparse_quantize")
@pytest.mark.parametrize("container", ["numpy", "torch"])
@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize(
    "feats_labels", [(False, False), (True, False), (True, True), (False, True)]
)
@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "idx{}-inv{}-maps{}".format(*map(int, f)))
def test_sparse_quantize_equals_minkowski(
    container: str, batched: bool, feats_labels: tuple, flags: tuple
) -> None:
    coords = points(1, batched=batched, integer=True)
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(len(coords), 4)).astype(np.float32)
    labels = rng.integers(0, 6, len(coords)).astype(np.int32)
    if container == "torch":
        coords, feats, labels = (torch.from_numpy(a) for a in (coords, feats, labels))
    kwargs = {
        "features": feats if feats_labels[0] else None,
        "labels": labels if feats_labels[1] else None,
        "ignore_label": 255,
        "return_index": flags[0],
        "return_inverse": flags[1],
        "return_maps_only": flags[2],
    }
    assert_same(
        NATIVE.utils.sparse_quantize(coords, **kwargs), MINK.utils.sparse_quantize(coords, **kwargs)
    )


@pytest.mark.me_names("utils.sparse_quantize")
@pytest.mark.parametrize("container", ["numpy", "torch"])
@pytest.mark.parametrize("size", [None, 1, 0.1, 0.25, [0.1, 0.2, 0.3]], ids=str)
def test_sparse_quantize_quantization_size_equals_minkowski(container: str, size: Any) -> None:
    coords = points(3, n=400)
    feats = np.random.default_rng(4).normal(size=(400, 2))
    if container == "torch":
        coords, feats = torch.from_numpy(coords.astype(np.float32)), torch.from_numpy(feats)
    kwargs = {"quantization_size": size, "return_index": True, "return_inverse": True}
    assert_same(
        NATIVE.utils.sparse_quantize(coords, feats, **kwargs),
        MINK.utils.sparse_quantize(coords, feats, **kwargs),
    )


@pytest.mark.me_names("utils.sparse_quantize")
def test_label_of_a_mixed_voxel_equals_minkowski() -> None:
    coords = np.array([[0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1], [1, 1, 1]], dtype=np.int32)
    labels = np.array([2, 3, 5, 5, 1], dtype=np.int32)
    for ignore in (-100, 255):
        assert_same(
            NATIVE.utils.sparse_quantize(coords, labels=labels, ignore_label=ignore),
            MINK.utils.sparse_quantize(coords, labels=labels, ignore_label=ignore),
        )


@pytest.mark.me_names("utils.unique_coordinate_map")
@pytest.mark.parametrize("stride", [1, 2, [1, 2, 4]], ids=str)
def test_unique_coordinate_map_equals_minkowski(stride: Any) -> None:
    coords = torch.from_numpy(points(5, batched=True, integer=True))
    assert_same(
        NATIVE.utils.unique_coordinate_map(coords, tensor_stride=stride),
        MINK.utils.unique_coordinate_map(coords, tensor_stride=stride),
    )


@pytest.mark.me_names("utils.fnv_hash_vec", "utils.ravel_hash_vec")
@pytest.mark.parametrize("integer", [False, True])
def test_hashes_equal_minkowski(integer: bool) -> None:
    rows = points(6, batched=True, integer=integer)
    assert_same(NATIVE.utils.fnv_hash_vec(rows), MINK.utils.fnv_hash_vec(rows))
    assert_same(NATIVE.utils.ravel_hash_vec(rows), MINK.utils.ravel_hash_vec(rows))


def batch_samples(seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for b, n in enumerate([5, 1, 8, 3]):
        xyz, f, lb = (
            rng.uniform(-3, 3, (n, 3)),
            rng.normal(size=(n, 2)).astype(np.float32),
            rng.integers(0, 4, n),
        )
        out.append(
            (xyz, f, lb)
            if b % 2 == 0
            else (torch.from_numpy(xyz), torch.from_numpy(f), torch.from_numpy(lb))
        )
    return out


@pytest.mark.me_names(
    "utils",
    "utils.batched_coordinates",
    "utils.sparse_collate",
    "utils.batch_sparse_collate",
    "utils.SparseCollation",
)
@pytest.mark.parametrize("dtype", [torch.int32, torch.float32])
def test_collation_equals_minkowski(dtype: torch.dtype) -> None:
    data = batch_samples(7)
    coords, feats, labels = (list(x) for x in zip(*data, strict=True))
    assert_same(
        NATIVE.utils.batched_coordinates(coords, dtype=dtype),
        MINK.utils.batched_coordinates(coords, dtype=dtype),
    )
    assert_same(
        NATIVE.utils.sparse_collate(coords, feats, dtype=dtype),
        MINK.utils.sparse_collate(coords, feats, dtype=dtype),
    )
    assert_same(
        NATIVE.utils.sparse_collate(coords, feats, labels, dtype=dtype),
        MINK.utils.sparse_collate(coords, feats, labels, dtype=dtype),
    )
    assert_same(
        NATIVE.utils.sparse_collate(coords, feats, [1, 2, 3, 4], dtype=dtype),
        MINK.utils.sparse_collate(coords, feats, [1, 2, 3, 4], dtype=dtype),
    )
    assert_same(
        NATIVE.utils.batch_sparse_collate(data, dtype=dtype),
        MINK.utils.batch_sparse_collate(data, dtype=dtype),
    )
    for limit in (-1, 0, 14, 17):
        assert_same(
            NATIVE.utils.SparseCollation(limit, dtype=dtype)(data),
            MINK.utils.SparseCollation(limit, dtype=dtype)(data),
        )


@pytest.mark.me_names("utils.kaiming_normal_")
@pytest.mark.parametrize("shape", [(5, 7), (27, 4, 8), (8, 3, 5, 2)], ids=str)
@pytest.mark.parametrize(
    "mode,nonlinearity,a",
    [("fan_in", "leaky_relu", 0), ("fan_out", "relu", 0), ("fan_in", "leaky_relu", 0.2)],
)
def test_kaiming_normal_equals_minkowski(
    shape: tuple, mode: str, nonlinearity: str, a: float
) -> None:
    torch.manual_seed(11)
    native = NATIVE.utils.kaiming_normal_(
        torch.empty(shape), a=a, mode=mode, nonlinearity=nonlinearity
    )
    torch.manual_seed(11)
    mink = MINK.utils.kaiming_normal_(torch.empty(shape), a=a, mode=mode, nonlinearity=nonlinearity)
    assert torch.equal(native, mink)


def _summary_net(ME: Any) -> torch.nn.Module:
    return torch.nn.Sequential(
        ME.MinkowskiConvolution(3, 8, kernel_size=3, stride=2, dimension=3),
        ME.MinkowskiBatchNorm(8),
        ME.MinkowskiReLU(),
        ME.MinkowskiConvolution(8, 4, kernel_size=1, bias=True, dimension=3),
        ME.MinkowskiGlobalAvgPooling(),
        ME.MinkowskiLinear(4, 2, bias=True),
    )


@pytest.mark.me_names("utils.summary")
def test_summary_equals_minkowski(capsys: pytest.CaptureFixture) -> None:
    coords = torch.from_numpy(points(8, n=120, batched=True, integer=True))
    coords = torch.unique(coords, dim=0)
    feats = torch.randn(len(coords), 3)
    results = []
    for ME in (NATIVE, MINK):
        torch.manual_seed(0)
        net = _summary_net(ME)
        net[1].bn.weight.requires_grad_(False)
        counts = ME.utils.summary(net, ME.SparseTensor(feats, coords))
        results.append((counts, capsys.readouterr().out))
    (native_counts, native_text), (mink_counts, mink_text) = results
    assert native_counts == mink_counts
    assert native_text == mink_text


@pytest.mark.me_names("get_kernel_volume", "convert_region_type", "RegionType")
def test_kernel_helpers_equal_minkowski() -> None:
    cube, cross = NATIVE.RegionType.HYPER_CUBE, NATIVE.RegionType.HYPER_CROSS
    m_cube, m_cross = MINK.RegionType.HYPER_CUBE, MINK.RegionType.HYPER_CROSS
    for sizes in ([3, 3, 3], [3, 2, 5], [1, 1, 1], [5, 3, 3, 3]):
        d = len(sizes)
        assert NATIVE.get_kernel_volume(cube, sizes, None, None, d) == MINK.get_kernel_volume(
            m_cube, sizes, None, None, d
        )
        rt, off, vol = NATIVE.convert_region_type(
            cube, [1] * d, torch.IntTensor(sizes), [1] * d, [1] * d, None, None, d
        )
        m_rt, m_off, m_vol = MINK.convert_region_type(
            m_cube, [1] * d, torch.IntTensor(sizes), [1] * d, [1] * d, None, None, d
        )
        assert int(rt) == int(m_rt) and vol == int(m_vol) and torch.equal(off, m_off)
        if all(k % 2 for k in sizes):
            assert NATIVE.get_kernel_volume(cross, sizes, None, None, d) == MINK.get_kernel_volume(
                m_cross, sizes, None, None, d
            )
            rt, off, vol = NATIVE.convert_region_type(
                cross, [1] * d, torch.IntTensor(sizes), [1] * d, [1] * d, None, None, d
            )
            m_rt, m_off, m_vol = MINK.convert_region_type(
                m_cross, [1] * d, torch.IntTensor(sizes), [1] * d, [1] * d, None, None, d
            )
            assert int(rt) == int(m_rt) and vol == int(m_vol) and torch.equal(off, m_off)
    custom = torch.IntTensor([[0, 0, 1], [1, 0, 0], [0, 0, 0]])
    assert NATIVE.get_kernel_volume(
        NATIVE.RegionType.CUSTOM, [3] * 3, custom, None, 3
    ) == MINK.get_kernel_volume(MINK.RegionType.CUSTOM, [3] * 3, custom, None, 3)


@pytest.mark.me_names(
    "convert_to_int_tensor",
    "CoordinateMapType",
    "GPUMemoryAllocatorType",
    "BroadcastMode",
    "set_gpu_allocator",
    "CoordsManager",
    "cuda_version",
    "cudart_version",
    "get_gpu_memory_info",
    "is_cuda_available",
)
def test_conversions_enums_and_queries_equal_minkowski() -> None:
    for arg in (3, [1, 2, 3], (4, 5, 6), np.array([7, 8, 9]), torch.IntTensor([1, 1, 2])):
        assert_same(NATIVE.convert_to_int_tensor(arg, 3), MINK.convert_to_int_tensor(arg, 3))
    for enum in ("CoordinateMapType", "GPUMemoryAllocatorType", "BroadcastMode"):
        native, mink = getattr(NATIVE, enum), getattr(MINK, enum)
        assert {m.name: int(m) for m in native} == {k: int(v) for k, v in mink.__members__.items()}
    backend = importlib.import_module("MinkowskiEngineBackend._C")
    assert {m.name: int(m) for m in NATIVE.ConvolutionMode} == {
        k: int(v) for k, v in backend.ConvolutionMode.__members__.items()
    }
    assert NATIVE.set_gpu_allocator(NATIVE.GPUMemoryAllocatorType.PYTORCH) is None
    assert MINK.set_gpu_allocator(MINK.GPUMemoryAllocatorType.PYTORCH) is None
    for ME in (NATIVE, MINK):
        with pytest.raises(DeprecationWarning, match="CoordinateManager"):
            ME.CoordsManager()
        assert issubclass(ME.MinkowskiModuleBase, torch.nn.Module)
    # a CPU-only MinkowskiEngine answers -1 / (0, 0); native on a CPU PyTorch the same
    if not torch.cuda.is_available() and not torch.version.cuda:
        assert (NATIVE.cuda_version(), NATIVE.cudart_version()) == (
            MINK.cuda_version(),
            MINK.cudart_version(),
        )
        assert tuple(NATIVE.get_gpu_memory_info()) == tuple(MINK.get_gpu_memory_info())
        assert NATIVE.is_cuda_available() is MINK.is_cuda_available() is False
