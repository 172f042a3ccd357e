"""Which of MinkowskiEngine 0.5.4's public names `stseg_models.sparse` has, and which compat tests check.

    python tools/minkowski_api_status.py [--me-src DIR] [--markdown | --write-readme | --check-readme]

A name's status is ``supported`` (present in `stseg_models.sparse`, ``utils.<name>`` in
`stseg_models.sparse.utils`), ``no-op on native backend`` (present, its docstring says it is a
no-op / accepted for compatibility) or ``not supported`` (absent). The name lists below were
written from MinkowskiEngine 0.5.4's ``__init__.py`` and ``utils/__init__.py``; ``--me-src`` reads
them from that package folder instead (``ast``, nothing imported) and prints any difference.

"Checked by" comes from declarations, not from where a name is mentioned: a compat test names
the MinkowskiEngine names it compares native vs MinkowskiEngine with
``@pytest.mark.me_names("SparseTensor", "utils.sparse_quantize")`` (on the test, its class, or
the module's ``pytestmark``). Only tests that pytest collects (``test*`` functions, ``Test*``
classes in ``test_*.py`` files) and that are marked ``minkowski`` count; a name no such test
declares is "unchecked". The declarations are read with ``ast`` (no test module is imported, so
this works without MinkowskiEngine); ``--source pytest`` asks pytest's own collection instead
(``-m minkowski``; needs MinkowskiEngine, else the compat modules skip at import).

Exit status: 0; 1 when a name is not supported or ``--check-readme`` finds the README's table out
of date; 2 on a bad declaration (a name that is not a MinkowskiEngine 0.5.4 public name, a
``me_names`` on a test not marked ``minkowski`` or on something pytest does not collect) or a
README without exactly one table block.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parents[1]
TESTS_DIR = PACKAGE_DIR / "tests"
README = PACKAGE_DIR / "README.md"
REPO_CONFIG = PACKAGE_DIR.parents[1] / "pyproject.toml"
BEGIN, END = "<!-- me-api-table:begin -->", "<!-- me-api-table:end -->"
MARK, SELECT = "me_names", "minkowski"
PLUGIN_OUT_ENV = "STSEG_ME_NAMES_OUT"

# MinkowskiEngine 0.5.4 __init__.py, in its import order (os, sys, warnings, torch left out).
# (whitespace-separated: one name a line would make this file twice as long)
ME_TOP_LEVEL = """
__version__ print_diagnostics MinkowskiAlgorithm CoordinateMapKey GPUMemoryAllocatorType
CoordinateMapType RegionType PoolingMode BroadcastMode is_cuda_available cuda_version
cudart_version get_gpu_memory_info KernelRegion KernelGenerator convert_region_type
get_kernel_volume SparseTensorOperationMode SparseTensorQuantizationMode
set_sparse_tensor_operation_mode sparse_tensor_operation_mode global_coordinate_manager
set_global_coordinate_manager clear_global_coordinate_manager SparseTensor TensorField
convert_to_int_tensor MinkowskiModuleBase set_memory_manager_backend set_gpu_allocator
CoordsManager CoordinateManager MinkowskiConvolutionFunction MinkowskiConvolution
MinkowskiConvolutionTransposeFunction MinkowskiConvolutionTranspose
MinkowskiGenerativeConvolutionTranspose MinkowskiChannelwiseConvolution
MinkowskiLocalPoolingFunction MinkowskiSumPooling MinkowskiAvgPooling MinkowskiMaxPooling
MinkowskiLocalPoolingTransposeFunction MinkowskiPoolingTranspose MinkowskiGlobalPoolingFunction
MinkowskiGlobalPooling MinkowskiGlobalSumPooling MinkowskiGlobalAvgPooling
MinkowskiGlobalMaxPooling MinkowskiDirectMaxPoolingFunction MinkowskiBroadcastFunction
MinkowskiBroadcastAddition MinkowskiBroadcastMultiplication MinkowskiBroadcast
MinkowskiBroadcastConcatenation MinkowskiELU MinkowskiHardshrink MinkowskiHardsigmoid
MinkowskiHardtanh MinkowskiHardswish MinkowskiLeakyReLU MinkowskiLogSigmoid MinkowskiPReLU
MinkowskiReLU MinkowskiReLU6 MinkowskiRReLU MinkowskiSELU MinkowskiCELU MinkowskiGELU
MinkowskiSigmoid MinkowskiSiLU MinkowskiSoftplus MinkowskiSoftshrink MinkowskiSoftsign
MinkowskiTanh MinkowskiTanhshrink MinkowskiThreshold MinkowskiSoftmin MinkowskiSoftmax
MinkowskiLogSoftmax MinkowskiAdaptiveLogSoftmaxWithLoss MinkowskiDropout MinkowskiAlphaDropout
MinkowskiSinusoidal MinkowskiBatchNorm MinkowskiSyncBatchNorm MinkowskiInstanceNorm
MinkowskiInstanceNormFunction MinkowskiStableInstanceNorm MinkowskiPruning
MinkowskiPruningFunction MinkowskiUnion MinkowskiUnionFunction MinkowskiInterpolation
MinkowskiInterpolationFunction MinkowskiNetwork MinkowskiOps MinkowskiLinear
MinkowskiToSparseTensor MinkowskiToDenseTensor MinkowskiToFeature MinkowskiStackCat
MinkowskiStackSum MinkowskiStackMean MinkowskiStackVar cat mean var to_sparse to_sparse_all
dense_coordinates sum MinkowskiFunctional utils modules spmm MinkowskiSPMMFunction
MinkowskiSPMMAverageFunction
""".split()  # noqa: SIM905

# MinkowskiEngine 0.5.4 utils/__init__.py.
ME_UTILS = """
sparse_quantize ravel_hash_vec fnv_hash_vec unique_coordinate_map SparseCollation
batched_coordinates sparse_collate batch_sparse_collate kaiming_normal_ summary
""".split()  # noqa: SIM905

_NOOP = re.compile(r"no-op|accepted for compatibility", re.IGNORECASE)


class DeclarationError(Exception):
    """A bad ``me_names`` declaration or README block (one problem per line)."""


def public_names(top: list[str] | None = None, utils_names: list[str] | None = None) -> list[str]:
    """Table order: top-level names bare, then ``utils.<name>``."""
    top = ME_TOP_LEVEL if top is None else top
    utils_names = ME_UTILS if utils_names is None else utils_names
    return [*top, *(f"utils.{n}" for n in utils_names)]


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


# --- declarations, read with ast -------------------------------------------------------------------
def _mark_name(node: ast.expr) -> tuple[str, ast.Call | None] | None:
    """('x', call or None) for ``pytest.mark.x`` / ``pytest.mark.x(...)``; None otherwise."""
    call = node if isinstance(node, ast.Call) else None
    target = call.func if call is not None else node
    if (
        isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Attribute)
        and target.value.attr == "mark"
        and isinstance(target.value.value, ast.Name)
        and target.value.value.id == "pytest"
    ):
        return target.attr, call
    return None


def _pytestmark(body: list[ast.stmt]) -> list[ast.expr]:
    """The mark expressions of a module's or class's ``pytestmark = mark | [marks]``."""
    marks: list[ast.expr] = []
    for node in body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
            marks = list(value.elts) if isinstance(value, (ast.List, ast.Tuple)) else [value]
    return marks


def _collected(tree: ast.Module) -> list[tuple[str, ast.AST, list[ast.expr]]]:
    """(test id, node, marks that apply) for what pytest's default rules collect in a module."""
    module_marks = _pytestmark(tree.body)
    out: list[tuple[str, ast.AST, list[ast.expr]]] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith(
            "test"
        ):
            out.append((node.name, node, module_marks + node.decorator_list))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            methods = [
                n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            ]
            if any(m.name == "__init__" for m in methods):
                continue  # pytest refuses to collect a test class with __init__
            class_marks = module_marks + node.decorator_list + _pytestmark(node.body)
            for m in methods:
                if m.name.startswith("test"):
                    out.append((f"{node.name}::{m.name}", m, class_marks + m.decorator_list))
    return out


def _literal_names(call: ast.Call, where: str) -> list[str]:
    if call.keywords or not call.args:
        raise DeclarationError(f"{where}: {MARK}(...) takes one or more name strings, nothing else")
    names = []
    for arg in call.args:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            raise DeclarationError(f"{where}: {MARK}(...) arguments must be string literals")
        names.append(arg.value)
    return names


def declarations(tests_dir: Path = TESTS_DIR) -> dict[str, list[str]]:
    """{test id ("file.py::test"): declared names} for collected, ``minkowski``-marked tests.

    Raises DeclarationError listing every bad declaration (unknown name, test not marked
    ``minkowski``, ``me_names`` anywhere this reader (and pytest's collection) would not apply it).
    """
    known = set(public_names())
    found: dict[str, list[str]] = {}
    problems: list[str] = []
    files = sorted({*tests_dir.rglob("test_*.py"), *tests_dir.rglob("*_test.py")})
    for path in files:
        rel = path.relative_to(tests_dir).as_posix()
        tree = ast.parse(path.read_text(), filename=str(path))
        used: set[int] = set()
        for test, _node, marks in _collected(tree):
            named = [(m, _mark_name(m)) for m in marks]
            selected = any(n is not None and n[0] == SELECT for _, n in named)
            declared: list[str] = []
            for expr, n in named:
                if n is None or n[0] != MARK:
                    continue
                used.add(id(expr))
                where = f"{path}:{expr.lineno}"
                if n[1] is None:
                    problems.append(f"{where}: {MARK} needs the names: {MARK}('SparseTensor', ...)")
                    continue
                try:
                    names = _literal_names(n[1], where)
                except DeclarationError as exc:
                    problems.append(str(exc))
                    continue
                declared += names
                problems += [
                    f"{where}: {test}: {name!r} is not a MinkowskiEngine 0.5.4 public name "
                    "(top-level names bare, utils names as 'utils.<name>')"
                    for name in names
                    if name not in known
                ]
            if declared and not selected:
                problems.append(
                    f"{path}: {test} declares {MARK} but is not marked {SELECT!r} "
                    "(it would not run in `nox -s compat`)"
                )
            elif declared:
                found[f"{rel}::{test}"] = list(dict.fromkeys(declared))
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):  # a mark the reader did not take, e.g. inside pytest.param
            if id(node) in called:
                continue
            if not isinstance(node, ast.expr):
                continue
            mark = _mark_name(node)
            if mark is not None and mark[0] == MARK and id(node) not in used:
                problems.append(
                    f"{path}:{node.lineno}: {MARK} is not on a collected test (a test* function, "
                    "a Test* class, or the module's pytestmark)"
                )
    if problems:
        raise DeclarationError("\n".join(problems))
    return found


# --- declarations, asked of pytest (this file is also the collecting plugin) ------------------------
_collection: dict[str, Any] = {"skipped": []}


def pytest_collectreport(report: Any) -> None:
    if report.skipped and str(report.nodeid).endswith(".py"):
        _collection["skipped"].append(report.nodeid)


def pytest_collection_finish(session: Any) -> None:
    out = os.environ.get(PLUGIN_OUT_ENV)
    if not out:
        return
    tests: dict[str, list[str]] = {}
    for item in session.items:
        names = [n for m in item.iter_markers(MARK) for n in m.args]
        if names:
            rel = Path(item.path).resolve().relative_to(Path(session.config.args[0]).resolve())
            test = re.sub(r"\[.*\]$", "", item.nodeid.split("::", 1)[1])
            tests.setdefault(f"{rel.as_posix()}::{test}", []).extend(names)
    found = {k: sorted(set(v)) for k, v in tests.items()}
    Path(out).write_text(json.dumps({"tests": found, "skipped": _collection["skipped"]}))


def declarations_by_pytest(tests_dir: Path = TESTS_DIR) -> dict[str, list[str]]:
    """Like `declarations` (names sorted), from ``pytest --collect-only -m minkowski``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "collected.json"
        env = dict(os.environ, **{PLUGIN_OUT_ENV: str(out)})
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
        cmd = [sys.executable, "-m", "pytest", "-c", str(REPO_CONFIG), "--rootdir", str(tests_dir)]
        cmd += ["-p", Path(__file__).stem, "-p", "no:cacheprovider", "--collect-only", "-q"]
        proc = subprocess.run(
            [*cmd, "-m", SELECT, str(tests_dir)], env=env, capture_output=True, text=True
        )
        if not out.exists():
            raise DeclarationError(f"pytest collection failed:\n{proc.stdout[-2000:]}")
        result = json.loads(out.read_text())
    if result["skipped"]:
        raise DeclarationError(
            f"pytest skipped {', '.join(result['skipped'])} at collection (is MinkowskiEngine "
            "importable?): its declarations cannot be read this way"
        )
    return dict(sorted(result["tests"].items()))


# --- the table --------------------------------------------------------------------------------------
def native_modules() -> tuple[ModuleType, ModuleType | None]:
    native = importlib.import_module("stseg_models.sparse")
    try:
        utils = importlib.import_module("stseg_models.sparse.utils")
    except ImportError:
        utils = None
    return native, utils


def statuses(top: list[str], utils_names: list[str]) -> list[tuple[str, str]]:
    """(qualified name, status) for every name, in table order."""
    native, utils = native_modules()
    rows = [(n, status(native, n)) for n in top]
    for n in utils_names:
        rows.append((f"utils.{n}", "not supported" if utils is None else status(utils, n)))
    return rows


def missing(top: list[str], utils_names: list[str]) -> list[str]:
    return [n for n, st in statuses(top, utils_names) if st == "not supported"]


def checked_by(declared: dict[str, list[str]]) -> dict[str, list[str]]:
    """{name: test ids declaring it}."""
    out: dict[str, list[str]] = {}
    for test, names in sorted(declared.items()):
        for name in names:
            out.setdefault(name, []).append(test)
    return out


def short_id(test: str) -> str:
    """``test_sparse_compat_ops.py::test_union`` -> ``sparse_compat_ops::test_union``."""
    path, _, rest = test.partition("::")
    return f"{Path(path).stem.removeprefix('test_')}::{rest}"


def _cell(tests: list[str]) -> str:
    if not tests:
        return "unchecked"
    if len(tests) <= 2:
        return ", ".join(f"`{short_id(t)}`" for t in tests)
    return f"{len(tests)} tests"


def markdown_block(rows: list[tuple[str, str]], declared: dict[str, list[str]]) -> str:
    """The README block between the markers (markers excluded), ending in a newline."""
    by = checked_by(declared)
    counts = {s: sum(st == s for _, st in rows) for s in (
        "supported", "no-op on native backend", "not supported")}  # fmt: skip
    checked = sum(bool(by.get(n)) for n, _ in rows)
    lines = [
        "<!-- generated by `python tools/minkowski_api_status.py --write-readme`; do not edit -->",
        f"{len(rows)} names: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f"; {checked} checked by a compat test, {len(rows) - checked} unchecked.",
        "",
        "| MinkowskiEngine name | stseg | checked by |",
        "|---|---|---|",
        *(f"| `{n}` | {st} | {_cell(by.get(n, []))} |" for n, st in rows),
    ]
    return "\n".join(lines) + "\n"


def readme_parts(text: str, readme: Path) -> tuple[str, str, str]:
    """(before the block, the block, after it); the block sits between the two marker lines."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise DeclarationError(f"{readme}: needs exactly one {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN + "\n", 1)
    block, tail = rest.split(END, 1)
    return head + BEGIN + "\n", block, END + tail


def write_readme(readme: Path, block: str) -> bool:
    """Replace the table block in place (atomically); False when it was already current."""
    text = readme.read_text()
    head, old, tail = readme_parts(text, readme)
    if old == block:
        return False
    tmp = readme.with_name(f".{readme.name}.tmp")
    tmp.write_text(head + block + tail)
    tmp.replace(readme)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--me-src", type=Path, help="MinkowskiEngine's package folder")
    parser.add_argument("--tests-dir", type=Path, default=TESTS_DIR, help="test folder to read")
    parser.add_argument("--source", choices=("ast", "pytest"), default="ast", help="reader")
    parser.add_argument("--readme", type=Path, default=README, help="README with the block")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--markdown", action="store_true", help="print the README block")
    action.add_argument("--write-readme", action="store_true", help="regenerate the README block")
    action.add_argument("--check-readme", action="store_true", help="exit 1 if the block is stale")
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
    try:
        read = declarations_by_pytest if opts.source == "pytest" else declarations
        declared = read(opts.tests_dir)
        rows = statuses(top, utils_names)
        block = markdown_block(rows, declared)
        if opts.write_readme:
            changed = write_readme(opts.readme, block)
            print(f"{opts.readme}: table {'regenerated' if changed else 'already current'}")
        elif opts.check_readme and readme_parts(opts.readme.read_text(), opts.readme)[1] != block:
            print(f"{opts.readme}: the API table is out of date (run --write-readme)")
            return 1
    except (DeclarationError, OSError) as exc:
        for line in str(exc).splitlines():
            print(f"Error: {line}", file=sys.stderr)
        return 2
    if opts.markdown:
        print(block, end="")
    elif not (opts.write_readme or opts.check_readme):
        by = checked_by(declared)
        for name, st in rows:
            print(
                f"{name:45s} {st:25s} {', '.join(map(short_id, by.get(name, []))) or 'unchecked'}"
            )
    print(block.splitlines()[1], file=sys.stderr)
    return 1 if any(st == "not supported" for _, st in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
