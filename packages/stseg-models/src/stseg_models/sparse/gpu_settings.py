"""MinkowskiEngine 0.5.4's allocator / coordinate-map settings and its retired `CoordsManager` name.

MinkowskiEngine lets a program choose between PyTorch's caching allocator and raw ``cudaMalloc``
for the temporary buffers of its CUDA kernels. The native engine allocates every buffer as a
PyTorch tensor, so it always uses PyTorch's allocator: `set_gpu_allocator` and its deprecated alias
`set_memory_manager_backend` check their argument as MinkowskiEngine does and change nothing
(no global state is kept). `set_coordinate_map_type` likewise: native coordinates always live on
the device of their features.
"""

from __future__ import annotations

import warnings
from typing import Any, NoReturn

from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.modes import CoordinateMapType, GPUMemoryAllocatorType


def set_gpu_allocator(backend: GPUMemoryAllocatorType) -> None:
    """Accepted no-op: the native engine always allocates through PyTorch.

    Raises `SparseInputError` when `backend` is not a `GPUMemoryAllocatorType` (MinkowskiEngine
    asserts the same).
    """
    if not isinstance(backend, GPUMemoryAllocatorType):
        raise SparseInputError(
            f"set_gpu_allocator expects a GPUMemoryAllocatorType, got {backend!r}"
        )


def set_coordinate_map_type(coordinate_map_type: CoordinateMapType) -> None:
    """Accepted no-op: native coordinates follow their features' device (CPU or CUDA)."""
    if not isinstance(coordinate_map_type, CoordinateMapType):
        raise SparseInputError(
            f"set_coordinate_map_type expects a CoordinateMapType, got {coordinate_map_type!r}"
        )


def set_memory_manager_backend(backend: GPUMemoryAllocatorType) -> None:
    """Deprecated alias of `set_gpu_allocator` (warns, as MinkowskiEngine does); a no-op natively."""
    warnings.warn(
        "`set_memory_manager_backend` has been deprecated. Use `set_gpu_allocator` instead.",
        stacklevel=2,
    )
    set_gpu_allocator(backend)


class CoordsManager:
    """MinkowskiEngine 0.4's coordinate manager name; constructing it raises, as in 0.5.4.

    MinkowskiEngine 0.5.4 raises ``DeprecationWarning`` (as an exception) pointing to
    `CoordinateManager`; so does this class.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise DeprecationWarning(
            "`CoordsManager` has been deprecated. Use `CoordinateManager` instead."
        )
