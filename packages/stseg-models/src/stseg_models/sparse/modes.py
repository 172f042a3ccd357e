"""MinkowskiEngine 0.5 enumerations accepted by the native backend."""

from __future__ import annotations

from enum import IntEnum


class SparseTensorQuantizationMode(IntEnum):
    """How rows with the same coordinates are merged when a tensor is created.

    RANDOM_SUBSAMPLE (SparseTensor default): keep one row per coordinate. MinkowskiEngine keeps an
    arbitrary one; the native backend deterministically keeps the first occurrence.
    UNWEIGHTED_AVERAGE (TensorField default): mean of the duplicates' features.
    UNWEIGHTED_SUM: sum. MAX_POOL: channel-wise maximum. NO_QUANTIZATION: duplicates are an error
    for a SparseTensor (a TensorField keeps every row).
    """

    RANDOM_SUBSAMPLE = 0
    UNWEIGHTED_AVERAGE = 1
    UNWEIGHTED_SUM = 2
    NO_QUANTIZATION = 3
    MAX_POOL = 4


class SparseTensorOperationMode(IntEnum):
    """Kept for API compatibility; the native backend always uses separate coordinate managers."""

    SEPARATE_COORDINATE_MANAGER = 0
    SHARE_COORDINATE_MANAGER = 1


class GlobalPoolingMode(IntEnum):
    """Kept for API compatibility; every mode computes the same result natively."""

    AUTO = 0
    INDEX_SELECT = 1
    SPARSE = 2


class PoolingMode(IntEnum):
    """Local and global pooling kinds (MinkowskiEngine 0.5 names)."""

    LOCAL_SUM_POOLING = 0
    LOCAL_AVG_POOLING = 1
    LOCAL_MAX_POOLING = 2
    GLOBAL_SUM_POOLING_DEFAULT = 3
    GLOBAL_AVG_POOLING_DEFAULT = 4
    GLOBAL_MAX_POOLING_DEFAULT = 5
    GLOBAL_SUM_POOLING_KERNEL = 6
    GLOBAL_AVG_POOLING_KERNEL = 7
    GLOBAL_MAX_POOLING_KERNEL = 8
    GLOBAL_SUM_POOLING_PYTORCH_INDEX = 9
    GLOBAL_AVG_POOLING_PYTORCH_INDEX = 10
    GLOBAL_MAX_POOLING_PYTORCH_INDEX = 11


class MinkowskiAlgorithm(IntEnum):
    """Kept for API compatibility (the native backend picks its own algorithm)."""

    DEFAULT = 0
    MEMORY_EFFICIENT = 1
    SPEED_OPTIMIZED = 2


class CoordinateMapType(IntEnum):
    """Where a coordinate map lives (MinkowskiEngine 0.5 names); natively, the features' device."""

    CPU = 0
    CUDA = 1


class GPUMemoryAllocatorType(IntEnum):
    """MinkowskiEngine's CUDA allocator choice; accepted and ignored natively (PyTorch's allocator)."""

    PYTORCH = 0
    CUDA = 1


class BroadcastMode(IntEnum):
    """Elementwise op of `MinkowskiBroadcast*` layers (MinkowskiEngine's spelling, typo included)."""

    ELEMENTWISE_ADDITON = 0
    ELEMENTWISE_MULTIPLICATION = 1


class ConvolutionMode(IntEnum):
    """MinkowskiEngine's GEMM strategy choice; accepted and ignored natively."""

    DEFAULT = 0
    DIRECT_GEMM = 1
    COPY_GEMM = 2
