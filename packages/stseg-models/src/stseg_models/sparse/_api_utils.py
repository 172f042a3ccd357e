"""Re-exports of MinkowskiEngine 0.5.4's utility names, enums and no-op settings.

Every name listed in ``__all__`` here becomes a top-level name of `stseg_models.sparse`:
``utils`` (the ``ME.utils`` package), the enums MinkowskiEngine exports from its extension, the
kernel-region helpers of ``MinkowskiKernelGenerator``, ``MinkowskiCommon``'s helpers and base
class, the allocator settings (accepted no-ops natively), the build / device queries, and
`install_alias` (``import MinkowskiEngine`` -> this engine, opt-in).
"""

from stseg_models.sparse import utils
from stseg_models.sparse.alias import install_alias, uninstall_alias
from stseg_models.sparse.common import (
    MinkowskiModuleBase,
    convert_to_int_tensor,
)
from stseg_models.sparse.diagnostics import (
    cuda_version,
    cudart_version,
    get_gpu_memory_info,
    is_cuda_available,
    print_diagnostics,
)
from stseg_models.sparse.gpu_settings import (
    CoordsManager,
    set_gpu_allocator,
    set_memory_manager_backend,
)
from stseg_models.sparse.kernel_region import KernelRegion, convert_region_type, get_kernel_volume
from stseg_models.sparse.modes import (
    BroadcastMode,
    ConvolutionMode,
    CoordinateMapType,
    GPUMemoryAllocatorType,
)

__all__: list[str] = [
    "BroadcastMode", "ConvolutionMode", "CoordinateMapType", "CoordsManager", "GPUMemoryAllocatorType",
    "KernelRegion", "MinkowskiModuleBase", "convert_region_type",
    "convert_to_int_tensor", "cuda_version", "cudart_version", "get_gpu_memory_info", "get_kernel_volume",
    "install_alias", "is_cuda_available", "print_diagnostics", "set_gpu_allocator",
    "set_memory_manager_backend", "uninstall_alias", "utils",
]  # fmt: skip
