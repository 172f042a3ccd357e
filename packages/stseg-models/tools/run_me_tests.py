"""Run MinkowskiEngine 0.5.4's own unit tests (``tests/python/*.py``), unedited, file by file.

    python tools/run_me_tests.py run --out OUT.json [--only STEM ...]
    python tools/run_me_tests.py compare NATIVE.json REAL.json [--summary SUMMARY.json]

``run`` imports each test file of the pinned copy in ``tests/me_upstream`` (MinkowskiEngine's
GitHub tag v0.5.4, commit 9f81ae66; the PyPI source distribution ships no tests) in a fresh
interpreter, after `stseg_models.sparse.install_alias` -- so the files meet the native engine
where no real MinkowskiEngine is installed, and the real one (with its ``collections`` shim) where
it is: run it once in each environment. The only stub: ``urllib.request.urlretrieve`` does nothing,
so ``common.py``'s download of ``1.ply`` (a network fetch at import time) is skipped; the tests
that read that file then fail as they do without open3d. Benchmark scripts (global.py,
network_speed.py, strided_conv.py) are not part of the copy. Outcomes go to OUT.json per test id.

``compare`` puts a native and a real-MinkowskiEngine run side by side: per-file pass counts, and
for each test that does not pass natively, why (it fails on real MinkowskiEngine too / needs CUDA
/ needs open3d and 1.ply / uses the C++ backend module). Exits 1 when a test passing on real
MinkowskiEngine does not pass natively.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tempfile
from pathlib import Path

UPSTREAM = Path(__file__).resolve().parents[1] / "tests" / "me_upstream"
TEST_DIR = UPSTREAM / "tests" / "python"
NOT_TESTS = {"__init__", "common"}
PASS = "passed"


def test_files() -> list[str]:
    """Stems of the upstream test files, sorted."""
    return sorted(p.stem for p in TEST_DIR.glob("*.py") if p.stem not in NOT_TESTS)


def declared_tests(stem: str) -> list[str]:
    """``Class.test_method`` ids a file declares (read from its source, so an import error still
    counts every test of the file)."""
    tree = ast.parse((TEST_DIR / f"{stem}.py").read_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found += [
                f"{node.name}.{f.name}"
                for f in node.body
                if isinstance(f, ast.FunctionDef) and f.name.startswith("test")
            ]
    return sorted(found)  # unittest's order: classes, then methods, by name


CATEGORIES = (
    "C++ internal symbol (MinkowskiEngineBackend._C)",
    "needs open3d and the 1.ply download",
    "needs CUDA",
)


def reason_of(message: str) -> str:
    """A short category for a failure or skip message."""
    lowered = message.lower()
    if "minkowskienginebackend" in lowered:
        return CATEGORIES[0]
    if "open3d" in lowered or "1.ply" in lowered:
        return CATEGORIES[1]
    if any(word in lowered for word in ("cuda", "nvidia driver", "accelerator device")):
        return CATEGORIES[2]
    return message


CHILD = r"""
import io, json, sys, traceback, unittest, urllib.request
root, stem, out, shim, *only = sys.argv[1:]
urllib.request.urlretrieve = lambda *a, **k: None  # common.py's 1.ply download: no network
from stseg_models.sparse import install_alias
aliased = install_alias()
sys.path.insert(0, root)
if not aliased and shim == "1":
    # MinkowskiEngine's utils/gradcheck.py imports torch._six and private helpers of
    # torch.autograd.gradcheck, all gone in PyTorch 2: on the real engine, the same check the
    # native run uses (PyTorch's gradcheck over fn.apply) stands in for it
    import importlib, MinkowskiEngine, utils
    sys.modules["utils.gradcheck"] = importlib.import_module("stseg_models.sparse.utils.gradcheck")
    utils.gradcheck = sys.modules["utils.gradcheck"]
outcomes = {}
def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1].strip()[:300] if lines else ""
class Result(unittest.TestResult):
    def stopTest(self, test):  # written after every test: a file that times out keeps the rest
        super().stopTest(test)
        json.dump({"engine": engine, "outcomes": outcomes, "import_error": ""}, open(out, "w"))
    def _id(self, test):
        return ".".join(test.id().split(".")[-2:])
    def addSuccess(self, test):
        outcomes[self._id(test)] = ["passed", ""]
    def addFailure(self, test, err):
        outcomes[self._id(test)] = ["failed", last_line(self._exc_info_to_string(err, test))]
    def addError(self, test, err):
        outcomes[self._id(test)] = ["error", last_line(self._exc_info_to_string(err, test))]
    def addSkip(self, test, reason):
        outcomes[self._id(test)] = ["skipped", reason]
    def addExpectedFailure(self, test, err):
        outcomes[self._id(test)] = ["failed", "expected failure"]
    def addUnexpectedSuccess(self, test):
        outcomes[self._id(test)] = ["passed", "unexpected success"]
import MinkowskiEngine
engine = "native" if aliased else "MinkowskiEngine " + getattr(MinkowskiEngine, "__version__", "?")
import_error = ""
try:
    module = __import__(f"tests.python.{stem}", fromlist=["_"])
    loader = unittest.defaultTestLoader
    suite = loader.loadTestsFromNames(only, module) if only else loader.loadTestsFromModule(module)
    suite.run(Result())
except BaseException:
    import_error = last_line(traceback.format_exc())
json.dump({"engine": engine, "outcomes": outcomes, "import_error": import_error}, open(out, "w"))
"""


def run_file(
    stem: str, python: str, timeout: float, shim: bool = True, only: list[str] | None = None
) -> dict:
    """Outcomes of one file in a fresh interpreter (cwd: a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="me-tests-") as work:
        out = Path(work) / "out.json"
        cmd = [
            python,
            "-c",
            CHILD,
            str(UPSTREAM),
            stem,
            str(out),
            "1" if shim else "0",
            *(only or []),
        ]
        try:
            proc = subprocess.run(
                cmd, cwd=work, capture_output=True, text=True, timeout=timeout, check=False
            )
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            timed_out = ""
        except subprocess.TimeoutExpired:
            tail, timed_out = [""], f"timed out after {timeout:.0f} s"
        got = json.loads(out.read_text()) if out.exists() else {"outcomes": {}, "engine": "?"}
    error = got.get("import_error") or tail[0]
    results = {}
    for test in only or declared_tests(stem):
        missing = ["error", error or "did not run"]
        if timed_out:  # the first test without an outcome was running; the rest never started
            missing = [
                "error",
                timed_out if timed_out not in str(results) else "did not run: file timed out",
            ]
        status, message = got["outcomes"].get(test, missing)
        results[test] = {"status": status, "message": message}
    return {"engine": got["engine"], "tests": results}


def run_file_resuming(stem: str, python: str, timeout: float, shim: bool) -> dict:
    """`run_file`, and after a test that times out (a 10-million-iteration leak loop, say) the
    file's remaining tests in a fresh interpreter, so one slow test costs only its own outcome."""
    got = run_file(stem, python, timeout, shim)
    while True:
        left = [t for t, r in got["tests"].items() if r["message"] == "did not run: file timed out"]
        if not left:
            return got
        more = run_file(stem, python, timeout, shim, only=left)
        got["tests"].update({t: more["tests"][t] for t in left})
        got["engine"] = got["engine"] if got["engine"] != "?" else more["engine"]


def cmd_run(args: argparse.Namespace) -> int:
    stems = args.only or test_files()
    report: dict = {"engine": "", "files": {}}
    for stem in stems:
        got = run_file_resuming(stem, args.python, args.timeout, not args.no_gradcheck_shim)
        report["engine"] = report["engine"] or got["engine"]
        report["files"][stem] = got["tests"]
        passed = sum(t["status"] == PASS for t in got["tests"].values())
        print(f"{stem:22s} {passed:3d}/{len(got['tests']):3d} passed ({got['engine']})", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0


def compare(native: dict, real: dict) -> tuple[dict, list[str]]:
    """Per-file counts, the non-passing tests with reasons, and the regressions (real-only passes)."""
    files: dict = {}
    regressions = []
    for stem, tests in sorted(native["files"].items()):
        real_tests = real["files"].get(stem, {})
        row = {"tests": len(tests), "native_passed": 0, "me_passed": 0, "not_passing": {}}
        for test, got in sorted(tests.items()):
            theirs = real_tests.get(test, {"status": "missing", "message": ""})
            row["native_passed"] += got["status"] == PASS
            row["me_passed"] += theirs["status"] == PASS
            if got["status"] == PASS:
                continue
            if theirs["status"] == PASS and reason_of(got["message"]) == CATEGORIES[0]:
                why = f"{CATEGORIES[0]}: {got['message']} (passes on MinkowskiEngine)"
            elif theirs["status"] == PASS:
                regressions.append(f"{stem}.py::{test}: {got['message']}")
                why = f"REGRESSION: passes on MinkowskiEngine, natively {got['message']}"
            else:
                theirs_why, ours_why = reason_of(theirs["message"]), reason_of(got["message"])
                why = theirs_why if theirs_why in CATEGORIES else "fails on MinkowskiEngine too: "
                why += "" if theirs_why in CATEGORIES else theirs["message"]
                if ours_why != theirs_why:
                    why += f" (natively: {got['message']})"
            row["not_passing"][test] = why
        files[stem] = row
    return files, regressions


def cmd_compare(args: argparse.Namespace) -> int:
    native = json.loads(Path(args.native).read_text())
    real = json.loads(Path(args.real).read_text())
    files, regressions = compare(native, real)
    totals = {k: sum(r[k] for r in files.values()) for k in ("tests", "native_passed", "me_passed")}
    print(f"{'file':22s} {'tests':>5s} {'native':>6s} {'ME':>4s}")
    for stem, row in files.items():
        print(f"{stem:22s} {row['tests']:5d} {row['native_passed']:6d} {row['me_passed']:4d}")
    print(
        f"{'total':22s} {totals['tests']:5d} {totals['native_passed']:6d} {totals['me_passed']:4d}"
    )
    for stem, row in files.items():
        for test, why in row["not_passing"].items():
            print(f"  {stem}.py::{test}: {why}")
    if args.summary:
        summary = {
            "source": "MinkowskiEngine v0.5.4 tests/python (commit 9f81ae66), CPU",
            "native_engine": native["engine"],
            "reference_engine": real["engine"],
            "totals": totals,
            "files": files,
        }
        Path(args.summary).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    for line in regressions:
        print(f"Error: {line}", file=sys.stderr)
    return 1 if regressions else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the test files in this environment")
    run.add_argument("--out", required=True)
    run.add_argument("--only", nargs="*", help="file stems (default: all)")
    run.add_argument("--python", default=sys.executable, help="interpreter to run them with")
    run.add_argument("--timeout", type=float, default=600.0, help="seconds per file")
    run.add_argument(
        "--no-gradcheck-shim",
        action="store_true",
        help="real MinkowskiEngine: keep its own utils.gradcheck (fails to import on PyTorch 2)",
    )
    comp = sub.add_parser("compare", help="native vs MinkowskiEngine outcomes")
    comp.add_argument("native")
    comp.add_argument("real")
    comp.add_argument("--summary", help="write per-file counts and reasons as JSON here")
    args = parser.parse_args(argv)
    return cmd_run(args) if args.command == "run" else cmd_compare(args)


if __name__ == "__main__":
    sys.exit(main())
