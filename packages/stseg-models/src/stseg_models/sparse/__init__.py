"""MinkowskiEngine 0.5 compatible sparse convolution engine in pure PyTorch.

``import stseg_models.sparse as ME`` runs MinkowskiEngine 0.5 code for the subset documented in
DESIGN §3. `get_backend()` returns MinkowskiEngine itself instead when selected and available.
"""

from stseg_models.sparse.backend import (
    BackendInfo,
    backend_name,
    backends,
    get_backend,
    install_collections_shim,
)
from stseg_models.sparse.conv import MinkowskiConvolution, MinkowskiConvolutionTranspose
from stseg_models.sparse.coordinate_manager import CoordinateManager, CoordinateMapKey
from stseg_models.sparse.errors import MinkowskiBuildError, SparseBackendError, SparseInputError
from stseg_models.sparse.field import TensorField
from stseg_models.sparse.kernel import KernelGenerator, RegionType
from stseg_models.sparse.modes import (
    GlobalPoolingMode,
    MinkowskiAlgorithm,
    PoolingMode,
    SparseTensorOperationMode,
    SparseTensorQuantizationMode,
)
from stseg_models.sparse.nonlinearity import *  # noqa: F403 - every Minkowski<Activation>
from stseg_models.sparse.nonlinearity import MinkowskiLinear, MinkowskiNonlinearityBase
from stseg_models.sparse.norm import (
    MinkowskiBatchNorm,
    MinkowskiInstanceNorm,
    MinkowskiSyncBatchNorm,
)
from stseg_models.sparse.ops import cat, to_sparse
from stseg_models.sparse.pooling import (
    MinkowskiAvgPooling,
    MinkowskiGlobalAvgPooling,
    MinkowskiGlobalMaxPooling,
    MinkowskiGlobalPooling,
    MinkowskiGlobalSumPooling,
    MinkowskiMaxPooling,
    MinkowskiPoolingTranspose,
    MinkowskiSumPooling,
)
from stseg_models.sparse.tensor import SparseTensor

__version__ = "0.5.4+stseg"
BACKEND = "native"


def clear_global_coordinate_manager() -> None:
    """No-op: the native backend never shares a global coordinate manager."""


def set_sparse_tensor_operation_mode(mode: SparseTensorOperationMode) -> None:
    """Accepted for compatibility; only separate coordinate managers are supported."""


__all__ = [
    "BACKEND", "BackendInfo", "CoordinateManager", "CoordinateMapKey", "GlobalPoolingMode", "KernelGenerator",
    "MinkowskiAlgorithm", "MinkowskiAvgPooling", "MinkowskiBatchNorm", "MinkowskiBuildError",
    "MinkowskiConvolution", "MinkowskiConvolutionTranspose", "MinkowskiGlobalAvgPooling",
    "MinkowskiGlobalMaxPooling", "MinkowskiGlobalPooling", "MinkowskiGlobalSumPooling", "MinkowskiInstanceNorm",
    "MinkowskiLinear", "MinkowskiMaxPooling", "MinkowskiNonlinearityBase", "MinkowskiPoolingTranspose",
    "MinkowskiSumPooling", "MinkowskiSyncBatchNorm", "PoolingMode", "RegionType", "SparseBackendError",
    "SparseInputError", "SparseTensor", "SparseTensorOperationMode", "SparseTensorQuantizationMode",
    "TensorField", "backend_name", "backends", "cat", "clear_global_coordinate_manager", "get_backend",
    "install_collections_shim", "set_sparse_tensor_operation_mode", "to_sparse",
]  # fmt: skip
