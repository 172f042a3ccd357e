"""Kernel regions: which neighbour offsets a sparse convolution or pooling visits, and in which order.

The order is MinkowskiEngine 0.5.4's, as measured in `shared/reference/minkowski_kernel_offsets.json`:

* ``HYPER_CUBE``: every offset of the box, first axis varying fastest; odd sizes are centred
  (``-(k//2) .. k//2``), even sizes span ``0 .. k-1``.
* ``HYPER_CROSS``: MinkowskiEngine 0.5.4's kernel map for this region visits the first
  ``1 + sum(k_i - 1)`` offsets of the hypercube in cube order (not the geometric cross). We
  reproduce that measured behaviour so checkpoints trained with MinkowskiEngine give the same
  outputs; odd kernel sizes only, as MinkowskiEngine requires.
* ``HYBRID`` (``axis_types`` given): the cube over the ``HYPER_CUBE`` axes (others at 0, first axis
  fastest), followed by the cross offsets of each ``HYPER_CROSS`` axis in axis order (-r..-1, 1..r).
  For 4D with the time axis crossed and size 3 this is the 27 spatial offsets then t=-1, t=+1.
* ``CUSTOM``: the offsets given in ``region_offsets`` ([K, D] integers), in that order.

Offsets are in units of the input tensor stride times the dilation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from enum import IntEnum

import torch

from stseg_models.sparse.errors import SparseInputError


class RegionType(IntEnum):
    """Shape of a kernel region (MinkowskiEngine 0.5 names; HYBRID is selected by ``axis_types``)."""

    HYPER_CUBE = 0
    HYPER_CROSS = 1
    CUSTOM = 2
    HYBRID = 3


def to_int_tuple(
    value: int | Sequence[int] | torch.Tensor, dimension: int, name: str
) -> tuple[int, ...]:
    """Expand a scalar or check a per-axis sequence of length `dimension`; values must be integers."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, bool):
        raise SparseInputError(
            f"{name} must be an integer or a sequence of {dimension} integers, got {value!r}"
        )
    if isinstance(value, int):
        return (int(value),) * dimension
    try:
        items = tuple(value)
    except TypeError:
        raise SparseInputError(
            f"{name} must be an integer or a sequence of integers, got {value!r}"
        ) from None
    if len(items) != dimension or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in items
    ):
        raise SparseInputError(
            f"{name} must be an integer or a sequence of {dimension} integers, got {value!r}"
        )
    return tuple(int(v) for v in items)


def _axis_range(size: int) -> range:
    # odd sizes are centred; even sizes start at 0 (MinkowskiEngine convention)
    return range(-(size // 2), size // 2 + 1) if size % 2 == 1 else range(0, size)


def cube_offsets(kernel_size: Sequence[int]) -> list[tuple[int, ...]]:
    """All offsets of the box `kernel_size`, first axis varying fastest."""
    ranges = [_axis_range(k) for k in kernel_size]
    # itertools.product varies the LAST factor fastest, so feed the axes reversed
    return [tuple(reversed(p)) for p in itertools.product(*reversed(ranges))]


def region_offsets(
    region_type: RegionType,
    kernel_size: Sequence[int],
    axis_types: Sequence[RegionType] | None = None,
    custom: torch.Tensor | None = None,
) -> list[tuple[int, ...]]:
    """Unscaled kernel offsets for a region, in MinkowskiEngine order (see module docstring)."""
    dimension = len(kernel_size)
    if any(k < 1 for k in kernel_size):
        raise SparseInputError(f"kernel_size must be >= 1 on every axis, got {tuple(kernel_size)}")
    if axis_types is not None:
        if len(axis_types) != dimension:
            raise SparseInputError(f"axis_types needs {dimension} entries, got {len(axis_types)}")
        cube_axes = [i for i, t in enumerate(axis_types) if RegionType(t) == RegionType.HYPER_CUBE]
        cross_axes = [
            i for i, t in enumerate(axis_types) if RegionType(t) == RegionType.HYPER_CROSS
        ]
        if len(cube_axes) + len(cross_axes) != dimension:
            raise SparseInputError(
                "axis_types entries must be RegionType.HYPER_CUBE or RegionType.HYPER_CROSS"
            )
        for i in cross_axes:
            if kernel_size[i] % 2 == 0:
                raise SparseInputError(
                    f"a HYPER_CROSS axis needs an odd kernel size, axis {i} has {kernel_size[i]}"
                )
        sizes = [kernel_size[i] if i in cube_axes else 1 for i in range(dimension)]
        offsets = cube_offsets(sizes)
        for i in cross_axes:
            r = kernel_size[i] // 2
            for step in [*range(-r, 0), *range(1, r + 1)]:
                off = [0] * dimension
                off[i] = step
                offsets.append(tuple(off))
        return offsets
    region_type = RegionType(region_type)
    if region_type == RegionType.HYPER_CUBE:
        return cube_offsets(kernel_size)
    if region_type == RegionType.HYPER_CROSS:
        if any(k % 2 == 0 for k in kernel_size):
            raise SparseInputError(f"HYPER_CROSS needs odd kernel sizes, got {tuple(kernel_size)}")
        volume = 1 + sum(k - 1 for k in kernel_size)
        return cube_offsets(kernel_size)[:volume]
    if region_type == RegionType.CUSTOM:
        if custom is None:
            raise SparseInputError("RegionType.CUSTOM needs region_offsets ([K, D] integer tensor)")
        if custom.dim() != 2 or custom.shape[1] != dimension or custom.is_floating_point():
            raise SparseInputError(
                f"region_offsets must be an integer tensor [K, {dimension}], got {tuple(custom.shape)}"
            )
        return [tuple(int(v) for v in row) for row in custom.tolist()]
    raise SparseInputError(
        "RegionType.HYBRID needs axis_types (one HYPER_CUBE/HYPER_CROSS per axis)"
    )


class KernelGenerator:
    """Kernel description shared by convolutions and poolings (MinkowskiEngine 0.5 signature)."""

    def __init__(
        self,
        kernel_size: int | Sequence[int] = -1,
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        is_transpose: bool = False,
        region_type: RegionType = RegionType.HYPER_CUBE,
        region_offsets: torch.Tensor | None = None,
        expand_coordinates: bool = False,
        axis_types: Sequence[RegionType] | None = None,
        dimension: int = -1,
    ) -> None:
        if not isinstance(dimension, int) or dimension < 1:
            raise SparseInputError(f"dimension must be a positive integer, got {dimension!r}")
        self.dimension = dimension
        self.kernel_size = to_int_tuple(kernel_size, dimension, "kernel_size")
        self.kernel_stride = to_int_tuple(stride, dimension, "stride")
        self.kernel_dilation = to_int_tuple(dilation, dimension, "dilation")
        if any(s < 1 for s in self.kernel_stride):
            raise SparseInputError(f"stride must be >= 1 on every axis, got {self.kernel_stride}")
        if any(d < 1 for d in self.kernel_dilation):
            raise SparseInputError(
                f"dilation must be >= 1 on every axis, got {self.kernel_dilation}"
            )
        self.is_transpose = bool(is_transpose)
        # generate the output coordinates (every input's kernel footprint): see `conv.py`
        self.expand_coordinates = bool(expand_coordinates)
        self.axis_types = None if axis_types is None else tuple(RegionType(t) for t in axis_types)
        self.region_type = (
            RegionType.HYBRID if self.axis_types is not None else RegionType(region_type)
        )
        self.offsets = region_offsets_list = region_offsets_for(self, region_offsets)
        self.region_offsets = torch.tensor(region_offsets_list, dtype=torch.int64).reshape(
            -1, dimension
        )
        self.kernel_volume = len(region_offsets_list)
        self._scaled: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def scaled_offsets(self, tensor_stride: Sequence[int]) -> torch.Tensor:
        """int64 [K, D]: the offsets times ``tensor_stride x dilation`` (cached per stride).

        Kernel maps are built for every new coordinate set; for tiny sets making this small
        tensor each time cost as much as the map itself.
        """
        scale = tuple(a * b for a, b in zip(tensor_stride, self.kernel_dilation, strict=True))
        cached = self._scaled.get(scale)
        if cached is None or cached[0] is not self.region_offsets:  # offsets replaced: redo
            cached = (self.region_offsets, self.region_offsets * torch.tensor(scale))
            self._scaled[scale] = cached
        return cached[1]

    def signature(self) -> tuple:
        """Hashable identity of the offsets and dilation (kernel-map cache key component)."""
        return (tuple(self.offsets), self.kernel_dilation)

    def __repr__(self) -> str:
        return (
            f"KernelGenerator(kernel_size={list(self.kernel_size)}, stride={list(self.kernel_stride)}, "
            f"dilation={list(self.kernel_dilation)}, region_type={self.region_type.name}, "
            f"volume={self.kernel_volume}, dimension={self.dimension})"
        )


def region_offsets_for(gen: KernelGenerator, custom: torch.Tensor | None) -> list[tuple[int, ...]]:
    """Offsets for a generator under construction (kept separate so it is testable on its own)."""
    return region_offsets(gen.region_type, gen.kernel_size, gen.axis_types, custom)
