"""MinkowskiEngine 0.5.4's ``MinkowskiEngine.utils`` for the native engine (``ME.utils``).

Same names, signatures, defaults, return values and order:

* voxelization and hashing (`quantization`): `sparse_quantize`, `unique_coordinate_map`,
  `ravel_hash_vec`, `fnv_hash_vec`;
* batching (`collation`): `batched_coordinates`, `sparse_collate`, `batch_sparse_collate`,
  `SparseCollation`;
* `kaiming_normal_` for ``[K, in, out]`` kernels (`init`) and `summary` of a network
  (`model_summary`).

Where MinkowskiEngine leaves a choice open (which row of a voxel is kept, row order on CUDA) the
native engine keeps the first occurrence, in order of first occurrence, on every device.
"""

from stseg_models.sparse.utils.collation import (
    SparseCollation,
    batch_sparse_collate,
    batched_coordinates,
    sparse_collate,
)
from stseg_models.sparse.utils.init import kaiming_normal_
from stseg_models.sparse.utils.model_summary import summary
from stseg_models.sparse.utils.quantization import (
    fnv_hash_vec,
    ravel_hash_vec,
    sparse_quantize,
    unique_coordinate_map,
)

__all__ = [
    "SparseCollation",
    "batch_sparse_collate",
    "batched_coordinates",
    "fnv_hash_vec",
    "kaiming_normal_",
    "ravel_hash_vec",
    "sparse_collate",
    "sparse_quantize",
    "summary",
    "unique_coordinate_map",
]
