"""MinkowskiEngine 0.5 compatible sparse convolution engine in pure PyTorch (CPU and CUDA).

``import stseg_models.sparse as ME`` runs MinkowskiEngine 0.5 code for the subset in DESIGN §3:
`SparseTensor`, `TensorField`, `CoordinateManager`, `KernelGenerator` / `RegionType`, convolution
and transposed convolution, max / average / sum pooling, pooling transpose, global pooling, batch /
sync-batch / instance norm, every pointwise non-linearity, linear, dropout and `cat`. Parameter
names and shapes match MinkowskiEngine's state dicts (``kernel`` [K, in, out] or [in, out] for
K = 1, ``bias`` [1, out], ``bn.*``, ``linear.*``).

Semantics (identical to MinkowskiEngine 0.5.4 unless noted):

* ``out[p] = sum_k kernel[k]^T in[p + s * offset_k]``, s = input tensor stride x dilation; offset
  order in `kernel`. A stride-t layer outputs the input coordinates floored to stride x t (rows in
  order of first occurrence); a transposed layer writes onto the cached finer set, row for row.
* Duplicate coordinates when a SparseTensor is created: RANDOM_SUBSAMPLE (default) keeps one row
  per coordinate — natively always the *first* occurrence (MinkowskiEngine keeps an arbitrary one);
  UNWEIGHTED_AVERAGE (TensorField default), UNWEIGHTED_SUM and MAX_POOL merge the features;
  ``inverse_mapping`` / ``unique_index`` record the mapping. Rows keep first-occurrence order.
* Bad input raises `SparseInputError` (a ValueError) before any computation.
* Generative layers (``expand_coordinates=True``, `MinkowskiGenerativeConvolutionTranspose`),
  explicit output coordinates (``layer(x, coordinates=...)``), `MinkowskiInterpolation` and the
  shared global coordinate manager follow MinkowskiEngine 0.5.4 (see `_api_coords`).

`backends()` reports whether the ``minkowski`` backend (MinkowskiEngine 0.5.4, built with
``stseg-models install-minkowski``) is usable and why not; `get_backend(name)` returns the module
to use, chosen by argument or ``$STSEG_SPARSE_BACKEND`` (default ``native``).
"""

# The rest of MinkowskiEngine 0.5.4's public API, one aggregator module per area; their names are
# appended to __all__ below.
from stseg_models.sparse import _api_coords, _api_ops, _api_utils
from stseg_models.sparse._api_coords import *  # noqa: F403
from stseg_models.sparse._api_ops import *  # noqa: F403
from stseg_models.sparse._api_utils import *  # noqa: F403
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
from stseg_models.sparse.gemm_rows import ensure_primitive_cache
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

# Before any half-precision GEMM of the process: oneDNN reads its cache size once (see gemm_rows).
ensure_primitive_cache()

__version__ = "0.5.4+stseg"
BACKEND = "native"


__all__ = [
    "BACKEND", "BackendInfo", "CoordinateManager", "CoordinateMapKey", "GlobalPoolingMode", "KernelGenerator",
    "MinkowskiAlgorithm", "MinkowskiAvgPooling", "MinkowskiBatchNorm", "MinkowskiBuildError",
    "MinkowskiConvolution", "MinkowskiConvolutionTranspose", "MinkowskiGlobalAvgPooling",
    "MinkowskiGlobalMaxPooling", "MinkowskiGlobalPooling", "MinkowskiGlobalSumPooling", "MinkowskiInstanceNorm",
    "MinkowskiLinear", "MinkowskiMaxPooling", "MinkowskiNonlinearityBase", "MinkowskiPoolingTranspose",
    "MinkowskiSumPooling", "MinkowskiSyncBatchNorm", "PoolingMode", "RegionType", "SparseBackendError",
    "SparseInputError", "SparseTensor", "SparseTensorOperationMode", "SparseTensorQuantizationMode",
    "TensorField", "backend_name", "backends", "cat", "get_backend",
    "install_collections_shim", "to_sparse",
]  # fmt: skip

__all__ += [*_api_coords.__all__, *_api_ops.__all__, *_api_utils.__all__]
