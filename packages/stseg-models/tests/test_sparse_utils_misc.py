"""MinkowskiEngine 0.5.4's plain top-level names: enums, kernel-region helpers, conversions, no-ops."""

from __future__ import annotations

import copy
import pickle
import shutil
import warnings

import numpy as np
import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.kernel import region_offsets

CUBE, CROSS = ME.RegionType.HYPER_CUBE, ME.RegionType.HYPER_CROSS


def test_enums_have_minkowski_names_and_values() -> None:
    assert [(m.name, m.value) for m in ME.CoordinateMapType] == [("CPU", 0), ("CUDA", 1)]
    assert [(m.name, m.value) for m in ME.GPUMemoryAllocatorType] == [("PYTORCH", 0), ("CUDA", 1)]
    assert [m.name for m in ME.BroadcastMode] == [
        "ELEMENTWISE_ADDITON",
        "ELEMENTWISE_MULTIPLICATION",
    ]
    assert [m.name for m in ME.ConvolutionMode] == ["DEFAULT", "DIRECT_GEMM", "COPY_GEMM"]


@pytest.mark.parametrize("sizes", [[3, 3, 3], [3, 2, 5], [1, 1, 1, 1], [5, 3, 3, 1]])
def test_get_kernel_volume_counts_the_offsets(sizes: list[int]) -> None:
    dim = len(sizes)
    assert ME.get_kernel_volume(CUBE, sizes, None, None, dim) == len(region_offsets(CUBE, sizes))
    if all(k % 2 for k in sizes):
        assert ME.get_kernel_volume(CROSS, sizes, None, None, dim) == 1 + sum(k - 1 for k in sizes)
    custom = torch.randint(-2, 3, (7, dim), dtype=torch.int32)
    assert ME.get_kernel_volume(ME.RegionType.CUSTOM, sizes, custom, None, dim) == 7
    types = [CUBE] * (dim - 1) + [CROSS]
    if sizes[-1] % 2:
        hybrid = len(region_offsets(ME.RegionType.HYBRID, sizes, types))
        assert ME.get_kernel_volume(ME.RegionType.HYBRID, sizes, None, types, dim) == hybrid


def test_get_kernel_volume_rejects_what_minkowski_asserts() -> None:
    with pytest.raises(SparseInputError, match="positive"):
        ME.get_kernel_volume(CUBE, [3, 0, 3], None, None, 3)
    with pytest.raises(SparseInputError, match="odd"):
        ME.get_kernel_volume(CROSS, [3, 2, 3], None, None, 3)
    with pytest.raises(SparseInputError, match="None"):
        ME.get_kernel_volume(CUBE, [3, 3, 3], torch.zeros(1, 3, dtype=torch.int32), None, 3)
    with pytest.raises(SparseInputError, match="dimension"):
        ME.get_kernel_volume(
            ME.RegionType.CUSTOM, [3] * 3, torch.zeros(2, 2, dtype=torch.int32), None, 3
        )


def test_convert_region_type_cube_cross_custom() -> None:
    rt, off, vol = ME.convert_region_type(
        CUBE, [1] * 3, torch.IntTensor([3, 3, 3]), [1] * 3, [1] * 3, None, None, 3
    )
    assert rt == CUBE and off.dtype == torch.int32 and off.numel() == 0 and vol == 27
    rt, off, vol = ME.convert_region_type(
        CROSS, [2] * 3, [3, 5, 3], [1] * 3, [1] * 3, torch.IntTensor(), None, 3
    )
    assert rt == CROSS and off.numel() == 0 and vol == 9
    custom = torch.tensor([[0, 0, 1], [1, 1, 1]])
    rt, off, vol = ME.convert_region_type(
        ME.RegionType.CUSTOM, [1] * 3, [3] * 3, [1] * 3, [1] * 3, custom, None, 3
    )
    assert (
        rt == ME.RegionType.CUSTOM
        and off.dtype == torch.int32
        and off.tolist() == custom.tolist()
        and vol == 2
    )


def test_convert_region_type_hybrid_gives_the_engine_offsets_scaled() -> None:
    types = [CUBE, CUBE, CUBE, CROSS]
    unscaled = region_offsets(ME.RegionType.HYBRID, [3, 3, 3, 3], types)
    rt, off, vol = ME.convert_region_type(
        ME.RegionType.HYBRID, [2, 2, 2, 1], [3, 3, 3, 3], [1, 1, 1, 1], [1, 2, 1, 1], None, types, 4
    )
    assert rt == ME.RegionType.CUSTOM and vol == 29 == len(unscaled)
    scale = [2, 4, 2, 1]  # dilation * tensor_stride / up_stride
    assert off.tolist() == [[o * s for o, s in zip(row, scale, strict=True)] for row in unscaled]
    # a transposed layer (up_stride 2 at tensor stride 2) lands on unit offsets
    _, off, _ = ME.convert_region_type(
        ME.RegionType.HYBRID, [2] * 4, [3] * 4, [2] * 4, [1] * 4, None, types, 4
    )
    assert off.tolist() == [list(r) for r in unscaled]
    with pytest.raises(SparseInputError, match="center"):
        ME.convert_region_type(
            ME.RegionType.HYBRID, [1] * 4, [3] * 4, [1] * 4, [1] * 4, None, types, 4, center=False
        )


def test_kernel_region_expands_scalars_and_is_a_tuple() -> None:
    region = ME.KernelRegion(3, [2, 2, 1], 1, CUBE, None, 3)
    assert tuple(region) == ([3, 3, 3], [2, 2, 1], [1, 1, 1], CUBE, None, 3)
    assert region.D == 3 and region.kernel_stride == [2, 2, 1]
    assert str(region) == f"kernel_size:[3, 3, 3], kernel_stride:[2, 2, 1], region_type:{CUBE}"
    assert copy.deepcopy(region) == region and pickle.loads(pickle.dumps(region)) == region
    with pytest.raises(SparseInputError, match="expected 3"):
        ME.KernelRegion([3, 3], 1, 1, CUBE, None, 3)


def test_convert_to_int_tensor() -> None:
    same = torch.IntTensor([1, 2, 3])
    assert ME.convert_to_int_tensor(same, 3) is same
    for arg in (2, np.int64(2), [2, 2, 2], (2, 2, 2), np.array([2, 2, 2]), torch.tensor([2, 2, 2])):
        out = ME.convert_to_int_tensor(arg, 3)
        assert out.dtype == torch.int32 and out.tolist() == [2, 2, 2]
    with pytest.raises(SparseInputError, match="expected 3"):
        ME.convert_to_int_tensor([1, 2], 3)
    with pytest.raises(SparseInputError, match="scalar or a sequence"):
        ME.convert_to_int_tensor(object(), 3)
    with pytest.raises(SparseInputError, match="integer"):
        ME.convert_to_int_tensor(torch.ones(3), 3)


def test_module_base_is_an_empty_module() -> None:
    class Layer(ME.MinkowskiModuleBase):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    assert issubclass(ME.MinkowskiModuleBase, torch.nn.Module)
    assert Layer()(torch.ones(2)).tolist() == [2.0, 2.0]


def test_allocator_settings_are_checked_no_ops() -> None:
    ME.set_gpu_allocator(ME.GPUMemoryAllocatorType.CUDA)
    with pytest.warns(UserWarning, match="deprecated"):
        ME.set_memory_manager_backend(ME.GPUMemoryAllocatorType.PYTORCH)
    with pytest.raises(SparseInputError, match="GPUMemoryAllocatorType"):
        ME.set_gpu_allocator("cuda")
    with pytest.raises(DeprecationWarning, match="CoordinateManager"):
        ME.CoordsManager(D=3)


def test_device_queries_describe_torch(capsys: pytest.CaptureFixture) -> None:
    assert ME.is_cuda_available() == torch.cuda.is_available()
    if torch.version.cuda:
        major, minor = (int(v) for v in torch.version.cuda.split(".")[:2])
        assert ME.cuda_version() == ME.cudart_version() == 1000 * major + 10 * minor
    else:
        assert ME.cuda_version() == ME.cudart_version() == -1
    free, total = ME.get_gpu_memory_info()
    assert (free, total) == (0, 0) if not torch.cuda.is_available() else 0 < free <= total
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ME.print_diagnostics()
    text = capsys.readouterr().out
    for section in ("System", "Pytorch", "NVIDIA-SMI", "NVCC", "CC", "MinkowskiEngine"):
        assert f"=========={section}==========" in text
    assert (
        torch.__version__ in text
        and f"NVCC version MinkowskiEngine is compiled: {ME.cuda_version()}" in text
    )


def test_every_plain_minkowski_name_is_exported() -> None:
    names = [
        "CoordinateMapType", "GPUMemoryAllocatorType", "BroadcastMode", "ConvolutionMode", "KernelRegion",
        "convert_region_type", "get_kernel_volume", "convert_to_int_tensor", "MinkowskiModuleBase",
        "set_memory_manager_backend", "set_gpu_allocator", "CoordsManager", "is_cuda_available",
        "cuda_version", "cudart_version", "get_gpu_memory_info", "print_diagnostics", "utils",
        "install_alias",
    ]  # fmt: skip
    missing = [n for n in names if n not in ME.__all__ or not hasattr(ME, n)]
    assert not missing


def test_submodule_helpers() -> None:
    from stseg_models.sparse.common import get_postfix, prep_args
    from stseg_models.sparse.diagnostics import parse_nvidia_smi
    from stseg_models.sparse.gpu_settings import set_coordinate_map_type
    from stseg_models.sparse.kernel_region import save_ctx

    ts, st, ks, dl, rt = prep_args(2, [1, 2, 1], torch.IntTensor([3, 3, 3]), (1, 1, 2), CROSS, D=3)
    assert [t.tolist() for t in (ts, st, ks, dl)] == [[2, 2, 2], [1, 2, 1], [3, 3, 3], [1, 1, 2]]
    assert rt == 1 and all(t.dtype == torch.int32 for t in (ts, st, ks, dl))
    with pytest.raises(SparseInputError, match="positive"):
        prep_args(1, 1, torch.IntTensor([3, 0, 3]), 1, CUBE, D=3)
    with pytest.raises(SparseInputError, match="dimension"):
        prep_args(1, 1, 3, 1, CUBE)
    assert get_postfix(torch.zeros(1)) == "CPU"
    smi = parse_nvidia_smi()
    assert isinstance(smi, dict) and (smi == {}) == (shutil.which("nvidia-smi") is None)
    set_coordinate_map_type(ME.CoordinateMapType.CPU)
    with pytest.raises(SparseInputError, match="CoordinateMapType"):
        set_coordinate_map_type("cpu")

    class Ctx:
        pass

    ctx = Ctx()
    assert save_ctx(ctx, "gen", "in", "out", "manager") is ctx
    assert (ctx.kernel_generator, ctx.in_coordinate_map_key) == ("gen", "in")  # type: ignore[attr-defined]
    assert (ctx.out_coordinate_map_key, ctx.coordinate_manager) == ("out", "manager")  # type: ignore[attr-defined]
