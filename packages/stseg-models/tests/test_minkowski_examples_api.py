"""Every public name of MinkowskiEngine 0.5.4 exists in `stseg_models.sparse` (and its ``utils``).

The lists are MinkowskiEngine 0.5.4's ``__version__`` and the names that its ``__init__.py`` and
``utils/__init__.py`` import (os, sys, warnings and torch left out), written here so that the
test needs nothing outside the repository. ``tools/minkowski_api_status.py`` prints the same table with each name's
status and whether the compat suite checks it (the README's "MinkowskiEngine API" table).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import stseg_models.sparse as ME

TOOL = Path(__file__).resolve().parents[1] / "tools" / "minkowski_api_status.py"

TOP_LEVEL = [
    "__version__", "print_diagnostics", "MinkowskiAlgorithm", "CoordinateMapKey",
    "GPUMemoryAllocatorType", "CoordinateMapType", "RegionType", "PoolingMode", "BroadcastMode",
    "is_cuda_available", "cuda_version", "cudart_version", "get_gpu_memory_info", "KernelRegion",
    "KernelGenerator", "convert_region_type", "get_kernel_volume", "SparseTensorOperationMode",
    "SparseTensorQuantizationMode", "set_sparse_tensor_operation_mode",
    "sparse_tensor_operation_mode", "global_coordinate_manager", "set_global_coordinate_manager",
    "clear_global_coordinate_manager", "SparseTensor", "TensorField", "convert_to_int_tensor",
    "MinkowskiModuleBase", "set_memory_manager_backend", "set_gpu_allocator", "CoordsManager",
    "CoordinateManager", "MinkowskiConvolutionFunction", "MinkowskiConvolution",
    "MinkowskiConvolutionTransposeFunction", "MinkowskiConvolutionTranspose",
    "MinkowskiGenerativeConvolutionTranspose", "MinkowskiChannelwiseConvolution",
    "MinkowskiLocalPoolingFunction", "MinkowskiSumPooling", "MinkowskiAvgPooling",
    "MinkowskiMaxPooling", "MinkowskiLocalPoolingTransposeFunction", "MinkowskiPoolingTranspose",
    "MinkowskiGlobalPoolingFunction", "MinkowskiGlobalPooling", "MinkowskiGlobalSumPooling",
    "MinkowskiGlobalAvgPooling", "MinkowskiGlobalMaxPooling", "MinkowskiDirectMaxPoolingFunction",
    "MinkowskiBroadcastFunction", "MinkowskiBroadcastAddition",
    "MinkowskiBroadcastMultiplication", "MinkowskiBroadcast", "MinkowskiBroadcastConcatenation",
    "MinkowskiELU", "MinkowskiHardshrink", "MinkowskiHardsigmoid", "MinkowskiHardtanh",
    "MinkowskiHardswish", "MinkowskiLeakyReLU", "MinkowskiLogSigmoid", "MinkowskiPReLU",
    "MinkowskiReLU", "MinkowskiReLU6", "MinkowskiRReLU", "MinkowskiSELU", "MinkowskiCELU",
    "MinkowskiGELU", "MinkowskiSigmoid", "MinkowskiSiLU", "MinkowskiSoftplus",
    "MinkowskiSoftshrink", "MinkowskiSoftsign", "MinkowskiTanh", "MinkowskiTanhshrink",
    "MinkowskiThreshold", "MinkowskiSoftmin", "MinkowskiSoftmax", "MinkowskiLogSoftmax",
    "MinkowskiAdaptiveLogSoftmaxWithLoss", "MinkowskiDropout", "MinkowskiAlphaDropout",
    "MinkowskiSinusoidal", "MinkowskiBatchNorm", "MinkowskiSyncBatchNorm",
    "MinkowskiInstanceNorm", "MinkowskiInstanceNormFunction", "MinkowskiStableInstanceNorm",
    "MinkowskiPruning", "MinkowskiPruningFunction", "MinkowskiUnion", "MinkowskiUnionFunction",
    "MinkowskiInterpolation", "MinkowskiInterpolationFunction", "MinkowskiNetwork",
    "MinkowskiOps", "MinkowskiLinear", "MinkowskiToSparseTensor", "MinkowskiToDenseTensor",
    "MinkowskiToFeature", "MinkowskiStackCat", "MinkowskiStackSum", "MinkowskiStackMean",
    "MinkowskiStackVar", "cat", "mean", "var", "to_sparse", "to_sparse_all", "dense_coordinates",
    "sum", "MinkowskiFunctional", "utils", "modules", "spmm", "MinkowskiSPMMFunction",
    "MinkowskiSPMMAverageFunction",
]  # fmt: skip

UTILS = [
    "sparse_quantize", "ravel_hash_vec", "fnv_hash_vec", "unique_coordinate_map",
    "SparseCollation", "batched_coordinates", "sparse_collate", "batch_sparse_collate",
    "kaiming_normal_", "summary",
]  # fmt: skip


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("minkowski_api_status", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_public_minkowski_name_exists() -> None:
    tool = load_tool()
    assert tool.missing(TOP_LEVEL, UTILS) == []


def test_the_tool_lists_the_same_names() -> None:
    tool = load_tool()
    assert list(tool.ME_TOP_LEVEL) == TOP_LEVEL and list(tool.ME_UTILS) == UTILS
    assert len(TOP_LEVEL) == len(set(TOP_LEVEL)) == 118 and len(UTILS) == 10


def test_status_tells_supported_no_op_and_missing_apart() -> None:
    tool = load_tool()
    assert tool.status(ME, "MinkowskiConvolution") == "supported"
    assert tool.status(ME, "no_such_name") == "not supported"
    fake = ModuleType("fake")

    def set_thing() -> None:
        """No-op on the native backend."""

    fake.set_thing = set_thing  # type: ignore[attr-defined]
    assert tool.status(fake, "set_thing") == "no-op on native backend"


def test_submodules_the_examples_import_are_there() -> None:
    """``ME.utils.*``, ``ME.MinkowskiFunctional`` and ``ME.modules.resnet_block`` (examples import them)."""
    from stseg_models.sparse.modules.resnet_block import BasicBlock, Bottleneck

    assert callable(ME.utils.sparse_quantize) and callable(ME.MinkowskiFunctional.relu)
    assert BasicBlock.expansion == 1 and Bottleneck.expansion == 4
