"""Which of MinkowskiEngine 0.5.4's public names `stseg_models.sparse` has, and which the compat suite checks.

    python tools/minkowski_api_status.py [--me-src DIR] [--markdown]

Without ``--me-src`` the name lists below are used (written from MinkowskiEngine 0.5.4's
``MinkowskiEngine/__init__.py`` and ``MinkowskiEngine/utils/__init__.py``); with it they are read
from that package folder's two ``__init__.py`` files instead (``ast``, nothing imported), and any
difference from the lists below is printed. A name's status is

* ``supported``: present in `stseg_models.sparse` (``utils.<name>`` in `stseg_models.sparse.utils`);
* ``no-op on native backend``: present, and its docstring says it is a no-op / accepted for
  compatibility (CUDA-allocator settings and the like);
* ``not supported``: absent.

"Compat-checked" means the name appears as an identifier in a ``minkowski``-marked test module
(``tests/test_sparse_compat*.py``, ``tests/test_minkowski_compat*.py``), i.e. the compat suite exercises it against MinkowskiEngine.
Exits 1 when a name is missing.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import sys
from pathlib import Path
from types import ModuleType

TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"
COMPAT_TEST_GLOBS = ("test_sparse_compat*.py", "test_minkowski_compat*.py")

# MinkowskiEngine 0.5.4 __init__.py, in its import order (os, sys, warnings, torch left out).
ME_TOP_LEVEL = [
    "__version__",
    "print_diagnostics",
    "MinkowskiAlgorithm",
    "CoordinateMapKey",
    "GPUMemoryAllocatorType",
    "CoordinateMapType",
    "RegionType",
    "PoolingMode",
    "BroadcastMode",
    "is_cuda_available",
    "cuda_version",
    "cudart_version",
    "get_gpu_memory_info",
    "KernelRegion",
    "KernelGenerator",
    "convert_region_type",
    "get_kernel_volume",
    "SparseTensorOperationMode",
    "SparseTensorQuantizationMode",
    "set_sparse_tensor_operation_mode",
    "sparse_tensor_operation_mode",
    "global_coordinate_manager",
    "set_global_coordinate_manager",
    "clear_global_coordinate_manager",
    "SparseTensor",
    "TensorField",
    "convert_to_int_tensor",
    "MinkowskiModuleBase",
    "set_memory_manager_backend",
    "set_gpu_allocator",
    "CoordsManager",
    "CoordinateManager",
    "MinkowskiConvolutionFunction",
    "MinkowskiConvolution",
    "MinkowskiConvolutionTransposeFunction",
    "MinkowskiConvolutionTranspose",
    "MinkowskiGenerativeConvolutionTranspose",
    "MinkowskiChannelwiseConvolution",
    "MinkowskiLocalPoolingFunction",
    "MinkowskiSumPooling",
    "MinkowskiAvgPooling",
    "MinkowskiMaxPooling",
    "MinkowskiLocalPoolingTransposeFunction",
    "MinkowskiPoolingTranspose",
    "MinkowskiGlobalPoolingFunction",
    "MinkowskiGlobalPooling",
    "MinkowskiGlobalSumPooling",
    "MinkowskiGlobalAvgPooling",
    "MinkowskiGlobalMaxPooling",
    "MinkowskiDirectMaxPoolingFunction",
    "MinkowskiBroadcastFunction",
    "MinkowskiBroadcastAddition",
    "MinkowskiBroadcastMultiplication",
    "MinkowskiBroadcast",
    "MinkowskiBroadcastConcatenation",
    "MinkowskiELU",
    "MinkowskiHardshrink",
    "MinkowskiHardsigmoid",
    "MinkowskiHardtanh",
    "MinkowskiHardswish",
    "MinkowskiLeakyReLU",
    "MinkowskiLogSigmoid",
    "MinkowskiPReLU",
    "MinkowskiReLU",
    "MinkowskiReLU6",
    "MinkowskiRReLU",
    "MinkowskiSELU",
    "MinkowskiCELU",
    "MinkowskiGELU",
    "MinkowskiSigmoid",
    "MinkowskiSiLU",
    "MinkowskiSoftplus",
    "MinkowskiSoftshrink",
    "MinkowskiSoftsign",
    "MinkowskiTanh",
    "MinkowskiTanhshrink",
    "MinkowskiThreshold",
    "MinkowskiSoftmin",
    "MinkowskiSoftmax",
    "MinkowskiLogSoftmax",
    "MinkowskiAdaptiveLogSoftmaxWithLoss",
    "MinkowskiDropout",
    "MinkowskiAlphaDropout",
    "MinkowskiSinusoidal",
    "MinkowskiBatchNorm",
    "MinkowskiSyncBatchNorm",
    "MinkowskiInstanceNorm",
    "MinkowskiInstanceNormFunction",
    "MinkowskiStableInstanceNorm",
    "MinkowskiPruning",
    "MinkowskiPruningFunction",
    "MinkowskiUnion",
    "MinkowskiUnionFunction",
    "MinkowskiInterpolation",
    "MinkowskiInterpolationFunction",
    "MinkowskiNetwork",
    "MinkowskiOps",
    "MinkowskiLinear",
    "MinkowskiToSparseTensor",
    "MinkowskiToDenseTensor",
    "MinkowskiToFeature",
    "MinkowskiStackCat",
    "MinkowskiStackSum",
    "MinkowskiStackMean",
    "MinkowskiStackVar",
    "cat",
    "mean",
    "var",
    "to_sparse",
    "to_sparse_all",
    "dense_coordinates",
    "sum",
    "MinkowskiFunctional",
    "utils",
    "modules",
    "spmm",
    "MinkowskiSPMMFunction",
    "MinkowskiSPMMAverageFunction",
]

# MinkowskiEngine 0.5.4 utils/__init__.py.
ME_UTILS = [
    "sparse_quantize",
    "ravel_hash_vec",
    "fnv_hash_vec",
    "unique_coordinate_map",
    "SparseCollation",
    "batched_coordinates",
    "sparse_collate",
    "batch_sparse_collate",
    "kaiming_normal_",
    "summary",
]

_NOOP = re.compile(r"no-op|accepted for compatibility", re.IGNORECASE)


def names_from_source(package_dir: Path) -> tuple[list[str], list[str]]:
    """Public names imported by MinkowskiEngine's ``__init__.py`` and ``utils/__init__.py``."""

    def imported(path: Path) -> list[str]:
        names = ["__version__"] if "__version__" in path.read_text() else []
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.ImportFrom, ast.Import)):
                names += [a.asname or a.name for a in node.names]
        return [n for n in names if n not in {"os", "sys", "warnings", "torch"}]

    return imported(package_dir / "__init__.py"), imported(package_dir / "utils" / "__init__.py")


def status(module: ModuleType, name: str) -> str:
    """'supported', 'no-op on native backend' or 'not supported' for `name` in `module`."""
    if not hasattr(module, name):
        return "not supported"
    obj = getattr(module, name)
    if callable(obj) and not isinstance(obj, type) and _NOOP.search(obj.__doc__ or ""):
        return "no-op on native backend"
    return "supported"


def compat_checked(name: str, tests_dir: Path = TESTS_DIR) -> bool:
    """Whether `name` appears as an identifier in a compat test module."""
    pattern = re.compile(rf"(?<![\w]){re.escape(name)}(?![\w])")
    return any(
        pattern.search(p.read_text())
        for glob in COMPAT_TEST_GLOBS
        for p in sorted(tests_dir.glob(glob))
    )


def native_modules() -> tuple[ModuleType, ModuleType | None]:
    native = importlib.import_module("stseg_models.sparse")
    try:
        utils = importlib.import_module("stseg_models.sparse.utils")
    except ImportError:
        utils = None
    return native, utils


def table(top: list[str], utils_names: list[str]) -> list[tuple[str, str, bool]]:
    """(qualified name, status, compat-checked) for every name."""
    native, utils = native_modules()
    rows = [(n, status(native, n), compat_checked(n)) for n in top]
    for n in utils_names:
        st = "not supported" if utils is None else status(utils, n)
        rows.append((f"utils.{n}", st, compat_checked(n)))
    return rows


def missing(top: list[str], utils_names: list[str]) -> list[str]:
    return [n for n, st, _ in table(top, utils_names) if st == "not supported"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--me-src", type=Path, help="MinkowskiEngine package folder (…/MinkowskiEngine)"
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    opts = parser.parse_args(argv)
    top, utils_names = list(ME_TOP_LEVEL), list(ME_UTILS)
    if opts.me_src:
        top, utils_names = names_from_source(opts.me_src)
        for label, ours, theirs in (
            ("top level", ME_TOP_LEVEL, top),
            ("utils", ME_UTILS, utils_names),
        ):
            if list(ours) != theirs:
                print(
                    f"{label}: source differs from the built-in list: {sorted(set(theirs) ^ set(ours))}"
                )
    rows = table(top, utils_names)
    if opts.markdown:
        print("| MinkowskiEngine name | stseg | compat-checked |\n|---|---|---|")
        for name, st, checked in rows:
            print(f"| `{name}` | {st} | {'yes' if checked else 'no'} |")
    else:
        for name, st, checked in rows:
            print(f"{name:45s} {st:25s} {'compat' if checked else ''}")
    absent = [n for n, st, _ in rows if st == "not supported"]
    counts = {
        s: sum(r[1] == s for r in rows)
        for s in ("supported", "no-op on native backend", "not supported")
    }
    print(
        f"\n{len(rows)} names: " + ", ".join(f"{v} {k}" for k, v in counts.items()), file=sys.stderr
    )
    return 1 if absent else 0


if __name__ == "__main__":
    sys.exit(main())
