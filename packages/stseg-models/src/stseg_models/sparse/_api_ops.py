"""Re-exports of MinkowskiEngine 0.5.4's layers and functional ops beyond the U-Net core.

Every name listed in ``__all__`` here becomes a top-level name of `stseg_models.sparse`, including
the module objects ``MinkowskiOps`` (`ops`), ``MinkowskiFunctional`` (`functional`) and
``modules`` (residual and squeeze-excitation blocks), and ``sum`` (MinkowskiEngine's ``_sum``).
"""

from stseg_models.sparse import functional as MinkowskiFunctional
from stseg_models.sparse import modules
from stseg_models.sparse import ops as MinkowskiOps
from stseg_models.sparse.broadcast import (
    MinkowskiBroadcast,
    MinkowskiBroadcastAddition,
    MinkowskiBroadcastConcatenation,
    MinkowskiBroadcastFunction,
    MinkowskiBroadcastMultiplication,
)
from stseg_models.sparse.channelwise import MinkowskiChannelwiseConvolution
from stseg_models.sparse.functions import (
    MinkowskiConvolutionFunction,
    MinkowskiConvolutionTransposeFunction,
    MinkowskiDirectMaxPoolingFunction,
    MinkowskiGlobalPoolingFunction,
    MinkowskiLocalPoolingFunction,
    MinkowskiLocalPoolingTransposeFunction,
)
from stseg_models.sparse.network import MinkowskiNetwork
from stseg_models.sparse.nonlinearity import *  # noqa: F403 - MinkowskiReLU ... (listed below)
from stseg_models.sparse.nonlinearity import (
    ALL_NONLINEARITIES,
    MinkowskiAdaptiveLogSoftmaxWithLoss,
    MinkowskiSinusoidal,
)
from stseg_models.sparse.norm import MinkowskiInstanceNormFunction, MinkowskiStableInstanceNorm
from stseg_models.sparse.ops import (
    MinkowskiToDenseTensor,
    MinkowskiToFeature,
    MinkowskiToSparseTensor,
    dense_coordinates,
    to_sparse_all,
)
from stseg_models.sparse.pruning import MinkowskiPruning, MinkowskiPruningFunction
from stseg_models.sparse.spmm import MinkowskiSPMMAverageFunction, MinkowskiSPMMFunction, spmm
from stseg_models.sparse.stack import (
    MinkowskiStackCat,
    MinkowskiStackMean,
    MinkowskiStackSum,
    MinkowskiStackVar,
    mean,
    sum,  # MinkowskiEngine exports its `_sum` under this name
    var,
)
from stseg_models.sparse.union import MinkowskiUnion, MinkowskiUnionFunction

__all__: list[str] = [
    "MinkowskiAdaptiveLogSoftmaxWithLoss", "MinkowskiBroadcast", "MinkowskiBroadcastAddition",
    "MinkowskiBroadcastConcatenation", "MinkowskiBroadcastFunction", "MinkowskiBroadcastMultiplication",
    "MinkowskiChannelwiseConvolution", "MinkowskiConvolutionFunction",
    "MinkowskiConvolutionTransposeFunction", "MinkowskiDirectMaxPoolingFunction", "MinkowskiFunctional",
    "MinkowskiGlobalPoolingFunction", "MinkowskiInstanceNormFunction", "MinkowskiLocalPoolingFunction",
    "MinkowskiLocalPoolingTransposeFunction", "MinkowskiNetwork", "MinkowskiOps", "MinkowskiPruning",
    "MinkowskiPruningFunction", "MinkowskiSPMMAverageFunction", "MinkowskiSPMMFunction",
    "MinkowskiSinusoidal", "MinkowskiStableInstanceNorm", "MinkowskiStackCat", "MinkowskiStackMean",
    "MinkowskiStackSum", "MinkowskiStackVar", "MinkowskiToDenseTensor", "MinkowskiToFeature",
    "MinkowskiToSparseTensor", "MinkowskiUnion", "MinkowskiUnionFunction", "dense_coordinates", "mean",
    "modules", "spmm", "sum", "to_sparse_all", "var",
]  # fmt: skip

# every pointwise layer (MinkowskiReLU ...): imported by the package already, listed here so that
# ``from stseg_models.sparse import *`` brings them too
__all__ += [cls.__name__ for cls in ALL_NONLINEARITIES if cls.__name__ not in __all__]
