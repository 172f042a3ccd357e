"""Every figure in the six READMEs is backed by a committed results file (issue 25, item 5).

A figure table is preceded by `<!-- figure: RESULTS.json by SCRIPT.py -->` (paths from the
repository root). The test checks that RESULTS lies under that package's `benchmarks/results/`,
exists, holds no machine path, that SCRIPT exists and writes JSON, and that every number in the
table's body (all columns but the first, which names the row) appears in the JSON, rounded as
shown. Prose and unmarked tables may not hold measurements (seconds, MiB, ×, mIoU, AP ...):
those belong in a marked table, or in docs/ with their history.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
READMES = [ROOT / "README.md", *sorted((ROOT / "packages").glob("*/README.md"))]
MARKER = re.compile(r"<!-- figure: (\S+\.json) by (\S+\.py) -->")
# a number not glued to a word or a version string: "1.64", "+1954", "1,000", not "0.5.4" or "14F"
NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?![\w]|\.\d)")
# what a measurement looks like in prose: "2.1 s", "1.64×", "948 MiB", "mIoU 0.710", "AP50 0.64"
MEASUREMENT = re.compile(
    r"\d(?:\.\d+)? ?(?:s|ms|min|MiB|GiB|MB|GB)\b|\d(?:\.\d+)?×(?!\d)|"
    r"\b(?:mIoU|AP|AP50|AP25|accuracy)\b[^|\n]{0,12}?\d\.\d"
)
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:tmp|work|root|home|Users|private|var/folders)/")
# the unit changes a results file may hold against the README: fractions shown as %, ms, MiB
SCALES = (1.0, 100.0, 1e3, 1e-3, 1e-6, 2.0**-20)


def _blocks(text: str) -> tuple[list[tuple[str, str, list[str]]], list[tuple[int, str]]]:
    """Marked tables (json, script, body rows) and the other lines (number, text) outside code."""
    lines = text.splitlines()
    marked: list[tuple[str, str, list[str]]] = []
    other: list[tuple[int, str]] = []
    in_code = in_generated = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            in_code = not in_code
        elif "me-api-table:begin" in line:
            in_generated = True  # another tool writes it, and it holds names, not measurements
        elif "me-api-table:end" in line:
            in_generated = False
        elif not in_code and not in_generated and (match := MARKER.search(line)):
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            table = []
            while i < len(lines) and lines[i].startswith("|"):
                table.append(lines[i])
                i += 1
            marked.append((match.group(1), match.group(2), table[2:]))
            continue
        elif not in_code and not in_generated:
            other.append((i + 1, line))
        i += 1
    return marked, other


def _numbers(value: object) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def _shown_in(shown: str, values: list[float]) -> bool:
    digits = len(shown.split(".")[1]) if "." in shown else 0
    target = float(shown.replace(",", ""))
    tolerance = 0.5 * 10.0**-digits + 1e-9
    return any(abs(v * s - target) <= tolerance for v in values for s in SCALES)


def _measurements(line: str) -> list[str]:
    """Measurement-like spans of a prose line; a target ("target < 10 s") is a promise, not one."""
    return [
        m.group(0)
        for m in MEASUREMENT.finditer(line)
        if "target" not in line[max(0, m.start() - 24) : m.start()]
    ]


def _table_numbers(rows: list[str]) -> list[str]:
    found = []
    for row in rows:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        for cell in cells[1:]:
            clean = cell.replace("−", "-").replace("–", " ").replace("*", "")
            found += [m.group(0).lstrip("+") for m in NUMBER.finditer(clean)]
    return found


FIGURES = [(readme, *block) for readme in READMES for block in _blocks(readme.read_text())[0]]


def test_the_readmes_have_figure_tables() -> None:
    # the six READMEs show their current figures; a parser that finds none checks nothing
    assert len(FIGURES) >= 6, [str(f[0]) for f in FIGURES]


@pytest.mark.parametrize(
    ("readme", "results", "script", "rows"),
    FIGURES,
    ids=[f"{f[0].parent.name}:{Path(f[1]).name}" for f in FIGURES],
)
def test_figure_table_is_backed_by_its_results_file(
    readme: Path, results: str, script: str, rows: list[str]
) -> None:
    path = ROOT / results
    parts = Path(results).parts
    assert parts[0] == "packages" and parts[2:4] == ("benchmarks", "results"), results
    assert path.is_file(), f"{readme}: {results} does not exist"
    writer = ROOT / script
    assert writer.is_file(), f"{readme}: the script {script} does not exist"
    # the writer is one of the same package's benchmark scripts or tools
    assert writer.parent.parent == path.parent.parent.parent, f"{script} is not {parts[1]}'s"
    assert writer.parent.name in ("benchmarks", "tools"), f"{script}: not a benchmark or tool"
    assert "json" in writer.read_text(), f"{script} writes no JSON"
    text = path.read_text()
    assert not MACHINE_PATH.search(text), f"{results} holds a machine path"
    assert rows, f"{readme}: no table after the marker for {results}"
    values = _numbers(json.loads(text))
    missing = [n for n in _table_numbers(rows) if not _shown_in(n, values)]
    assert not missing, f"{readme}: figures not in {results}: {missing}"


@pytest.mark.parametrize("readme", READMES, ids=[r.parent.name for r in READMES])
def test_no_measurement_outside_a_figure_table(readme: Path) -> None:
    stray = [
        f"line {n}: {line.strip()[:90]}"
        for n, line in _blocks(readme.read_text())[1]
        if _measurements(line)
    ]
    assert not stray, f"{readme}: measurements without a results file: {stray}"


def test_the_checks_can_fail(tmp_path: Path) -> None:
    # a number missing from the JSON, a machine path and a stray prose figure are each caught
    assert not _shown_in("0.710", [0.7, 0.72])
    assert (
        _shown_in("0.710", [0.71049]) and _shown_in("71.0", [0.71]) and _shown_in("1,954", [1954])
    )
    assert _table_numbers(["| 3×3×3 32→32 | 0.107 | 3.81× | 0.5.4 | +1954 MiB |"]) == [
        "0.107",
        "3.81",
        "1954",
    ]
    assert MACHINE_PATH.search('{"scenes": "/tmp/c2/VAL"}')
    assert not MACHINE_PATH.search('{"scenes": "runs/x/VAL"}')
    marked, other = _blocks(
        "<!-- figure: a.json by b.py -->\n\n| h | v |\n|---|---|\n| x | 1.5 s |\n"
        "It took 9 min 6 s.\n```\nrun 2.0 s\n```\n"
    )
    assert marked == [("a.json", "b.py", ["| x | 1.5 s |"])]
    assert [line for _, line in other if _measurements(line)] == ["It took 9 min 6 s."]
    assert _measurements("render in 2.1 s (target < 10 s)") == ["2.1 s"]
    assert _measurements("a 3×3×3 conv, 1.64× faster") == ["1.64×"]


def test_demo_figures_copies_what_the_run_measured() -> None:
    # the demo runs for minutes, so its figures reach the README through this copy
    import importlib.util

    path = ROOT / "packages/stseg-train/benchmarks/demo_figures.py"
    spec = importlib.util.spec_from_file_location("demo_figures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    metrics = {
        "miou": 0.7104,
        "mean_accuracy": 0.853,
        "overall_accuracy": 0.868,
        "rotations": 4,
        "voxels": {"miou": 0.735},
        "per_class": {"wall": {"iou": 0.9, "accuracy": 0.95}, "bed": {"iou": None}},
    }
    summary = {"iterations": 720, "seconds_data": 33.0, "seconds_train_and_eval": 513.4}
    figures = module.demo_figures(metrics, summary)
    assert figures["val_miou_points"] == 0.7104 and figures["val_miou_voxels"] == 0.735
    assert figures["per_class_iou_points"] == {"wall": 0.9, "bed": None}
    assert figures["seconds_total"] == 546.4 and figures["iterations"] == 720
    assert not MACHINE_PATH.search(json.dumps(figures))


@pytest.mark.parametrize(
    "results",
    sorted((ROOT / "packages").glob("*/benchmarks/results/*.json")),
    ids=lambda p: p.name,
)
def test_no_results_file_holds_a_machine_path(results: Path) -> None:
    # committed results name files by their place in the repository, never by this machine's
    assert not MACHINE_PATH.search(results.read_text()), results
