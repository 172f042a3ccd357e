"""`tools/minkowski_api_status.py`: the README's API table comes from the compat tests' declarations.

A compat test declares the MinkowskiEngine names it compares with ``@pytest.mark.me_names(...)``;
the tool reads them (``ast``, no MinkowskiEngine needed), refuses names MinkowskiEngine 0.5.4 does
not have and declarations pytest would not apply, and writes the table between the README's
``me-api-table`` markers. The small test folders below are written per test (``tmp_path``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "minkowski_api_status.py"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("minkowski_api_status_under_test", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_tests(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_text("import pytest\n\n" + textwrap.dedent(body))
    return folder


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, env=env, timeout=300
    )


def row(block: str, name: str) -> str:
    return next(line for line in block.splitlines() if line.startswith(f"| `{name}` |"))


TWO_TESTS = """
pytestmark = pytest.mark.minkowski


@pytest.mark.me_names("MinkowskiConvolution", "utils.sparse_quantize")
@pytest.mark.parametrize("k", [1, 3])
def test_conv(k):
    pass


@pytest.mark.me_names("SparseTensor")
def test_tensor():
    pass
"""


def test_readme_table_equals_the_generated_one(tool: ModuleType) -> None:
    """The committed block is what the declarations of this folder's compat tests give."""
    rows = tool.statuses(tool.ME_TOP_LEVEL, tool.ME_UTILS)
    block = tool.markdown_block(rows, tool.declarations(tool.TESTS_DIR))
    committed = tool.readme_parts(tool.README.read_text(), tool.README)[1]
    assert committed == block, (
        "README API table is stale: run tools/minkowski_api_status.py --write-readme"
    )
    assert len(rows) == 128 and block.count("\n| `") == 128


def test_declarations_are_read_per_test(tmp_path: Path, tool: ModuleType) -> None:
    tests = write_tests(tmp_path / "t", {"test_a.py": TWO_TESTS})
    assert tool.declarations(tests) == {
        "test_a.py::test_conv": ["MinkowskiConvolution", "utils.sparse_quantize"],
        "test_a.py::test_tensor": ["SparseTensor"],
    }
    block = tool.markdown_block(
        tool.statuses(tool.ME_TOP_LEVEL, tool.ME_UTILS), tool.declarations(tests)
    )
    assert row(block, "MinkowskiConvolution").endswith("| `a::test_conv` |")
    assert row(block, "utils.sparse_quantize").endswith("| `a::test_conv` |")
    assert row(block, "MinkowskiUnion").endswith("| unchecked |")
    assert "3 checked by a compat test, 125 unchecked" in block


def test_removing_a_declaration_makes_the_name_unchecked(tmp_path: Path, tool: ModuleType) -> None:
    tests = write_tests(tmp_path / "t", {"test_a.py": TWO_TESTS})
    rows = tool.statuses(tool.ME_TOP_LEVEL, tool.ME_UTILS)
    before = tool.markdown_block(rows, tool.declarations(tests))
    assert row(before, "SparseTensor").endswith("| `a::test_tensor` |")
    # the test still mentions SparseTensor everywhere; without its declaration it checks nothing
    without = TWO_TESTS.replace('@pytest.mark.me_names("SparseTensor")\n', "")
    write_tests(tests, {"test_a.py": without + "\n# SparseTensor SparseTensor\n"})
    after = tool.markdown_block(rows, tool.declarations(tests))
    assert row(after, "SparseTensor").endswith("| unchecked |")
    assert "2 checked by a compat test, 126 unchecked" in after


def test_a_misspelled_name_is_an_error(tmp_path: Path, tool: ModuleType) -> None:
    body = TWO_TESTS.replace('"SparseTensor"', '"SparseTensr"')
    tests = write_tests(tmp_path / "t", {"test_a.py": body})
    with pytest.raises(tool.DeclarationError, match=r"test_a\.py:\d+: test_tensor: 'SparseTensr'"):
        tool.declarations(tests)
    proc = run_tool("--tests-dir", str(tests))
    assert proc.returncode == 2
    assert (
        "Error: " in proc.stderr
        and "'SparseTensr' is not a MinkowskiEngine 0.5.4 public name" in proc.stderr
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('@pytest.mark.me_names("cat")\ndef test_x():\n    pass\n', "not marked 'minkowski'"),
        (
            'pytestmark = pytest.mark.minkowski\n\n@pytest.mark.me_names("cat")\ndef helper():\n    pass\n',
            "not on a collected test",
        ),
        (
            "pytestmark = pytest.mark.minkowski\n\n@pytest.mark.parametrize('x', "
            '[pytest.param(1, marks=pytest.mark.me_names("cat"))])\ndef test_x(x):\n    pass\n',
            "not on a collected test",
        ),
        (
            "pytestmark = pytest.mark.minkowski\nNAMES = ['cat']\n\n"
            "@pytest.mark.me_names(*NAMES)\ndef test_x():\n    pass\n",
            "string literals",
        ),
        (
            "pytestmark = [pytest.mark.minkowski, pytest.mark.me_names]\n\ndef test_x():\n    pass\n",
            "needs the names",
        ),
        (
            "@pytest.mark.minkowski\n@pytest.mark.me_names('sparse_quantize')\ndef test_x():\n    pass\n",
            "'utils.<name>'",
        ),
    ],
    ids=["not-minkowski", "helper", "in-param", "not-literal", "no-names", "utils-bare"],
)
def test_declarations_pytest_would_not_apply_are_errors(
    tmp_path: Path, tool: ModuleType, body: str, message: str
) -> None:
    tests = write_tests(tmp_path / "t", {"test_a.py": body})
    with pytest.raises(tool.DeclarationError, match=re.escape(message)):
        tool.declarations(tests)


CLASS_AND_MODULE = """
pytestmark = [pytest.mark.minkowski, pytest.mark.me_names("TensorField")]


@pytest.mark.me_names("cat")
class TestOps:
    pytestmark = pytest.mark.me_names("MinkowskiUnion")

    @pytest.mark.me_names("MinkowskiPruning")
    def test_prune(self):
        pass

    def test_plain(self):
        pass


def test_field():
    pass
"""


def test_class_and_module_marks_apply_as_pytest_applies_them(
    tmp_path: Path, tool: ModuleType
) -> None:
    """Same answer from the ast reader and from pytest's own collection (``-m minkowski``)."""
    tests = write_tests(
        tmp_path / "t",
        {
            "test_a.py": CLASS_AND_MODULE,
            "test_b.py": TWO_TESTS,
            "test_c.py": "def test_not_compat():\n    pass\n",
        },
    )
    found = tool.declarations(tests)
    assert found == {
        "test_a.py::TestOps::test_prune": [
            "TensorField",
            "cat",
            "MinkowskiUnion",
            "MinkowskiPruning",
        ],
        "test_a.py::TestOps::test_plain": ["TensorField", "cat", "MinkowskiUnion"],
        "test_a.py::test_field": ["TensorField"],
        "test_b.py::test_conv": ["MinkowskiConvolution", "utils.sparse_quantize"],
        "test_b.py::test_tensor": ["SparseTensor"],
    }
    assert tool.declarations_by_pytest(tests) == {k: sorted(v) for k, v in sorted(found.items())}


def test_write_readme_regenerates_only_the_block(tmp_path: Path, tool: ModuleType) -> None:
    tests = write_tests(tmp_path / "t", {"test_a.py": TWO_TESTS})
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nprose\n\n{tool.BEGIN}\n| old | table |\n{tool.END}\n\nafter\n")
    stale = run_tool("--tests-dir", str(tests), "--readme", str(readme), "--check-readme")
    assert stale.returncode == 1 and "out of date" in stale.stdout
    wrote = run_tool("--tests-dir", str(tests), "--readme", str(readme), "--write-readme")
    assert wrote.returncode == 0, wrote.stderr
    text = readme.read_text()
    assert text.startswith(f"# Title\n\nprose\n\n{tool.BEGIN}\n") and text.endswith(
        f"{tool.END}\n\nafter\n"
    )
    assert (
        "| old | table |" not in text
        and "| `SparseTensor` | supported | `a::test_tensor` |" in text
    )
    fresh = run_tool("--tests-dir", str(tests), "--readme", str(readme), "--check-readme")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr


def test_a_readme_without_one_block_is_refused(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n")
    proc = run_tool("--readme", str(readme), "--write-readme")
    assert proc.returncode == 2 and "needs exactly one" in proc.stderr
    assert readme.read_text() == "# no markers here\n"


@pytest.mark.minkowski
def test_pytest_collects_the_declarations_the_ast_reader_reads(tool: ModuleType) -> None:
    """With MinkowskiEngine (compat modules import), pytest's collection gives the same table."""
    from stseg_models.testing import minkowski_or_skip

    minkowski_or_skip(module_level=False)
    found = tool.declarations(tool.TESTS_DIR)
    assert tool.declarations_by_pytest(tool.TESTS_DIR) == {
        k: sorted(v) for k, v in sorted(found.items())
    }


def drawn_names(graph_module: ModuleType, dim: int, seed: int) -> set[str]:
    """MinkowskiEngine names one random graph uses (its native side alone builds the same graph)."""
    graph, _, _ = graph_module.build_graph(dim, seed, lockstep=False)
    names = {type(native).__name__ for native, _ in graph.layers}
    for node in graph.nodes[1:]:
        if node.op.startswith("cat("):
            names.add("cat")
        elif node.op[0] in "+-*":  # SparseTensor's own operators
            names.add("SparseTensor")
        elif node.op.startswith("dense->"):
            names.add("to_sparse")
    return names


@pytest.mark.minkowski
def test_random_graph_declarations_are_the_names_its_seeds_draw(tool: ModuleType) -> None:
    """The random-graph tests declare what their seeds draw, no more (a name the draw could pick
    but these seeds never do is not checked by them), no less."""
    from stseg_models.testing import minkowski_or_skip

    minkowski_or_skip(module_level=False)
    path = tool.TESTS_DIR / "test_sparse_compat_random_graph.py"
    spec = importlib.util.spec_from_file_location("random_graph_under_test", path)
    assert spec is not None and spec.loader is not None
    graphs = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = graphs  # its dataclasses look their module up
    spec.loader.exec_module(graphs)
    declared = tool.declarations(tool.TESTS_DIR)
    for dim, seeds in ((3, graphs.SEEDS_3D), (4, graphs.SEEDS_4D)):
        drawn = set().union(*(drawn_names(graphs, dim, seed) for seed in seeds))
        test = f"test_sparse_compat_random_graph.py::test_random_graph_{dim}d"
        assert set(declared[test]) == drawn, (dim, sorted(set(declared[test]) ^ drawn))
