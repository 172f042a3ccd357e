"""MinkowskiEngine 0.5.4's kernel-region helpers: `get_kernel_volume`, `convert_region_type`, `KernelRegion`.

These are the functions of ``MinkowskiKernelGenerator`` that user code calls directly. The native
`KernelGenerator` (`kernel.py`) computes its offsets itself; these helpers answer as MinkowskiEngine's:

* `get_kernel_volume(region_type, kernel_size, region_offset, axis_types, dimension)` -- number of
  kernel offsets: ``prod(k)`` for HYPER_CUBE, ``1 + sum(k - 1)`` for HYPER_CROSS (odd sizes),
  ``len(region_offset)`` for CUSTOM. HYBRID: ``prod(k over cube axes) + sum(k - 1 over cross
  axes)`` (MinkowskiEngine 0.5.4 raises NotImplementedError here; the volume is well defined).
* `convert_region_type(...)` -- ``(region_type, region_offset, kernel_volume)``: HYPER_CUBE and
  HYPER_CROSS keep their type with an empty int32 offset tensor. HYBRID (``axis_types`` per axis;
  MinkowskiEngine 0.5.4's RegionType has no HYBRID member, so its branch cannot be reached there)
  becomes CUSTOM with the native engine's HYBRID offsets (`kernel.region_offsets` order, so the
  CUSTOM kernel equals ``KernelGenerator(axis_types=...)``), each scaled by
  ``dilation * tensor_stride / up_stride`` and truncated to int. CUSTOM returns the given integer
  offsets (MinkowskiEngine 0.5.4 fails on CUSTOM with AttributeError). ``kernel_volume`` is an
  int (MinkowskiEngine returns a 0-d int32 tensor when ``kernel_size`` is a tensor).
* `KernelRegion` -- the named tuple ``(kernel_size, kernel_stride, kernel_dilation, region_type,
  offset, D)`` with scalars expanded to per-axis lists (MinkowskiEngine 0.5.4's constructor raises
  TypeError on any call; this one builds the tuple its code describes).
* `save_ctx(ctx, kernel_generator, in_key, out_key, manager)` -- stores the four on an autograd
  context under MinkowskiEngine's attribute names and returns it.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import torch

from stseg_models.sparse.common import convert_to_int_list
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.kernel import RegionType, region_offsets


def _sizes(kernel_size: Any) -> list[int]:
    sizes = [int(k) for k in kernel_size]
    if not sizes or any(k <= 0 for k in sizes):
        raise SparseInputError(f"kernel_size must be positive, got {sizes}")
    return sizes


def _is_empty(region_offset: Any) -> bool:
    if region_offset is None:
        return True
    return isinstance(region_offset, torch.Tensor) and region_offset.numel() == 0


def _custom_offsets(region_offset: Any, dimension: int) -> torch.Tensor:
    if not isinstance(region_offset, torch.Tensor) or region_offset.numel() == 0:
        raise SparseInputError("region_offset must be non empty when region_type is CUSTOM")
    if region_offset.dim() != 2 or region_offset.size(1) != dimension:
        raise SparseInputError(
            f"region_offset must be [K, {dimension}] (the network's dimension), got {tuple(region_offset.shape)}"
        )
    if region_offset.is_floating_point() or region_offset.dtype == torch.bool:
        raise SparseInputError(
            f"region_offset must be an integer tensor, got {region_offset.dtype}"
        )
    return region_offset


def _axis_types(axis_types: Any, dimension: int) -> list[RegionType]:
    if axis_types is None or len(axis_types) != dimension:
        raise SparseInputError(f"RegionType.HYBRID needs axis_types with {dimension} entries")
    return [RegionType(int(t)) for t in axis_types]


def get_kernel_volume(
    region_type: RegionType,
    kernel_size: Sequence[int] | torch.Tensor,
    region_offset: torch.Tensor | None,
    axis_types: Sequence[RegionType] | None,
    dimension: int,
) -> int:
    """Number of offsets of a kernel region (see the module docstring for each region type)."""
    region_type = RegionType(int(region_type))
    if region_type == RegionType.HYPER_CUBE:
        sizes = _sizes(kernel_size)
        if region_offset is not None:
            raise SparseInputError("Region offset must be None when region_type is given")
        if axis_types is not None:
            raise SparseInputError("Axis types must be None when region_type is given")
        return math.prod(sizes)
    if region_type == RegionType.HYPER_CROSS:
        sizes = _sizes(kernel_size)
        if any(k % 2 == 0 for k in sizes):
            raise SparseInputError("kernel_size must be odd for region_type HYPER_CROSS")
        return 1 + sum(k - 1 for k in sizes)
    if region_type == RegionType.CUSTOM:
        return int(_custom_offsets(region_offset, dimension).size(0))
    sizes = _sizes(kernel_size)
    types = _axis_types(axis_types, dimension)
    cube = math.prod(k for k, t in zip(sizes, types, strict=True) if t == RegionType.HYPER_CUBE)
    cross = sum(k - 1 for k, t in zip(sizes, types, strict=True) if t == RegionType.HYPER_CROSS)
    return cube + cross


def convert_region_type(
    region_type: RegionType,
    tensor_stride: Sequence[int] | torch.Tensor,
    kernel_size: Sequence[int] | torch.Tensor,
    up_stride: Sequence[int] | torch.Tensor,
    dilation: Sequence[int] | torch.Tensor,
    region_offset: torch.Tensor | None,
    axis_types: Sequence[RegionType] | None,
    dimension: int,
    center: bool = True,
) -> tuple[RegionType, torch.Tensor, int]:
    """``(region_type, region_offset [K, D] int32 or empty, kernel_volume)`` as MinkowskiEngine.

    ``up_stride`` is a transposed layer's stride (1 otherwise); only HYBRID offsets use the
    strides. ``center=False`` (uncentred HYBRID axes) is refused with `SparseInputError`.
    """
    region_type = RegionType(int(region_type))
    sizes = _sizes(kernel_size)
    if region_type in (RegionType.HYPER_CUBE, RegionType.HYBRID) and not _is_empty(region_offset):
        raise SparseInputError("Region offset must be empty when region_type is given")
    if region_type == RegionType.HYPER_CUBE:
        if axis_types is not None:
            raise SparseInputError("Axis types must be None when region_type is given")
        return region_type, torch.zeros(0, dtype=torch.int32), math.prod(sizes)
    if region_type == RegionType.HYPER_CROSS:
        if any(k % 2 == 0 for k in sizes):
            raise SparseInputError("kernel_size must be odd for region_type HYPER_CROSS")
        return region_type, torch.zeros(0, dtype=torch.int32), 1 + sum(k - 1 for k in sizes)
    if region_type == RegionType.CUSTOM:
        offsets = _custom_offsets(region_offset, dimension).int()
        return region_type, offsets, int(offsets.size(0))
    types = _axis_types(axis_types, dimension)
    ts = [float(v) for v in tensor_stride]
    up = [float(v) for v in up_stride]
    dil = [float(v) for v in dilation]
    if not len(sizes) == len(ts) == len(up) == len(dil) == dimension:
        raise SparseInputError(
            f"kernel_size, tensor_stride, up_stride and dilation need {dimension} values each"
        )
    if not center:
        raise SparseInputError("center=False is not supported for RegionType.HYBRID")
    scale = [dil[d] * (ts[d] / up[d]) for d in range(dimension)]
    unscaled = region_offsets(RegionType.HYBRID, sizes, types)
    # int() truncates toward zero, as MinkowskiEngine's torch.IntTensor(float offsets) does
    table = torch.tensor(
        [[int(o * scale[d]) for d, o in enumerate(off)] for off in unscaled], dtype=torch.int32
    ).reshape(-1, dimension)
    return RegionType.CUSTOM, table, int(table.size(0))


_KernelRegionFields = namedtuple(
    "_KernelRegionFields",
    ("kernel_size", "kernel_stride", "kernel_dilation", "region_type", "offset", "D"),
)


class KernelRegion(_KernelRegionFields):
    """A kernel description as a named tuple (MinkowskiEngine's field names, ``D`` last).

    ``KernelRegion(kernel_size, kernel_stride, kernel_dilation, region_type, offset, dimension)``:
    scalars are expanded to one value per axis (lists of `dimension` values are kept as given).
    """

    __slots__ = ()

    def __new__(
        cls,
        kernel_size: Any,
        kernel_stride: Any,
        kernel_dilation: Any,
        region_type: RegionType,
        offset: Any,
        dimension: int,
    ) -> KernelRegion:
        return super().__new__(
            cls,
            convert_to_int_list(kernel_size, dimension),
            convert_to_int_list(kernel_stride, dimension),
            convert_to_int_list(kernel_dilation, dimension),
            region_type,
            offset,
            dimension,
        )

    def __str__(self) -> str:
        return (
            f"kernel_size:{self.kernel_size}, kernel_stride:{self.kernel_stride}, "
            f"region_type:{self.region_type}"
        )


def save_ctx(
    ctx: Any,
    kernel_generator: Any,
    in_coords_key: Any,
    out_coords_key: Any,
    coordinate_manager: Any,
) -> Any:
    """Store a layer's kernel, coordinate keys and manager on an autograd `ctx`; return `ctx`."""
    ctx.kernel_generator = kernel_generator
    ctx.in_coordinate_map_key = in_coords_key
    ctx.out_coordinate_map_key = out_coords_key
    ctx.coordinate_manager = coordinate_manager
    return ctx
