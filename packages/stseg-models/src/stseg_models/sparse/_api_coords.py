"""MinkowskiEngine 0.5.4's coordinate-side API: generative layers, interpolation, operation mode.

Every name listed in ``__all__`` here becomes a top-level name of `stseg_models.sparse`.
"""

from stseg_models.sparse.conv import MinkowskiGenerativeConvolutionTranspose
from stseg_models.sparse.interpolation import (
    MinkowskiInterpolation,
    MinkowskiInterpolationFunction,
)
from stseg_models.sparse.operation_mode import (
    clear_global_coordinate_manager,
    global_coordinate_manager,
    set_global_coordinate_manager,
    set_sparse_tensor_operation_mode,
    sparse_tensor_operation_mode,
)

__all__: list[str] = [
    "MinkowskiGenerativeConvolutionTranspose",
    "MinkowskiInterpolation",
    "MinkowskiInterpolationFunction",
    "clear_global_coordinate_manager",
    "global_coordinate_manager",
    "set_global_coordinate_manager",
    "set_sparse_tensor_operation_mode",
    "sparse_tensor_operation_mode",
]
