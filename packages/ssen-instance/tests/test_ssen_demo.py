"""`ssen-instance demo` through the command line, as users type it, on a tiny demo.

Five synthetic rooms (four train, one held out), 4 semantic and 4 embedding iterations with
checkpoints every 2, one thread:

- a straight run writes metrics.json (finite AP / AP50 / AP25 in [0, 1] for predicted and for
  ground-truth semantics, equal to the AP recomputed from the benchmark files it wrote), the
  example room's benchmark files (the same as the evaluation's for that room), PNGs and HTML,
  and shows a progress bar with elapsed<remaining (the ETA) for each long step: both trainings,
  the SSEN preprocessing and the two evaluations;
- the same demo killed with SIGKILL right after the semantic checkpoint 2 is on disk, resumed and
  killed right after the embedding checkpoint 2, then resumed to the end: the same metrics and
  the same predictions as the straight run; a further `--resume` of the finished demo skips every
  stage and writes the same metrics;
- an existing folder is refused (exit 2, nothing changed), as are `--resume` of a folder that is
  not a demo and `--resume` with other settings; a missing stseg-viz fails before any work.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ssen_instance.demo import run_demo
from ssen_instance.errors import InstanceInputError
from ssen_instance.evaluate import encode_gt_ids, evaluate_instances
from ssen_instance.export import read_scannet_instances
from ssen_instance.scenes import list_scene_files, read_ssen_scene
from stseg_data.labels import scannet20_to_nyu40
from stseg_train.crashtest import load, run_command, run_until_hang, state_differences

TOOL = str(Path(sys.executable).parent / "ssen-instance")
TINY = ["--rooms", "5", "--semantic-max-iter", "4", "--max-iter", "4", "--save-freq", "2",
        "--threads", "1", "--semantic-set", "save_freq=2", "--semantic-set", "eval_rotations=1"]  # fmt: skip
SEMANTICS = ("predicted_semantics", "gt_semantics")
# The long steps of the demo and the bar each shows (tqdm's `desc`).
PROGRESS_BARS = ("train", "preprocess ssen", "evaluate (predict semantics)",
                 "evaluate (gt semantics)")  # fmt: skip
# A finished tqdm bar: "<desc>: 100%|...| n/n [elapsed<remaining, rate...]".
FINISHED_BAR = r"{desc}: 100%\|[^|]*\| (\d+)/\1 \[\d\d:\d\d<\d\d:\d\d"


def _demo(out: Path, *extra: str, progress: bool = False) -> list[str]:
    # --no-progress where a fault stops the demo: a progress bar's last line has no newline, so
    # the fault's marker line would not start a line and `run_until_hang` would not see it.
    return [
        TOOL,
        "demo",
        "--out",
        str(out),
        *TINY,
        *([] if progress else ["--no-progress"]),
        *extra,
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A straight demo and one killed twice (in each training) and resumed, side by side."""
    root = tmp_path_factory.mktemp("demo")
    straight, killed = root / "straight", root / "killed"
    with ThreadPoolExecutor(1) as pool:
        # The straight run shows its progress bars (the default), the killed one logs lines.
        done = pool.submit(run_command, _demo(straight, progress=True), timeout=600)
        # hang:0:2 stops the semantic training after its checkpoint 2; the resumed semantic
        # training starts from that checkpoint (no new checkpoint 2), so the same fault then stops
        # the embedding training after its checkpoint 2.
        first = run_until_hang(_demo(killed), "hang:0:2", timeout=600)
        assert "demo: semantic ..." in first and "demo: preprocess" not in first, first
        second = run_until_hang(_demo(killed, "--resume", str(killed)), "hang:0:2", timeout=600)
        assert "data already complete" in second and "demo: instance ..." in second, second
        last = run_command(_demo(killed, "--resume", str(killed)), timeout=600)
        assert last.returncode == 0, last.stdout
        result = done.result()
    assert result.returncode == 0, result.stdout
    (root / "straight.log").write_text(result.stdout)
    return {"straight": straight, "killed": killed}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_shows_a_progress_bar_with_eta_for_every_long_step(runs: dict[str, Path]) -> None:
    output = (runs["straight"].parent / "straight.log").read_text().replace("\r", "\n")
    for desc in PROGRESS_BARS:
        finished = re.findall(FINISHED_BAR.format(desc=re.escape(desc)), output)
        assert finished, f"no finished {desc!r} bar with elapsed<remaining in:\n{output[-3000:]}"
    # Both trainings (semantic and embedding) start a bar of their own, each to iteration 4.
    assert len(re.findall(r"^train:   0%\|", output, re.MULTILINE)) == 2, output[-3000:]
    assert set(re.findall(FINISHED_BAR.format(desc="train"), output)) == {"4"}


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_writes_consistent_metrics_and_predictions(runs: dict[str, Path]) -> None:
    run = runs["straight"]
    metrics = _metrics(run)
    val = list_scene_files(run / "scenes" / "val")
    assert len(val) == metrics["rooms"]["held_out"] == 1
    assert metrics["rooms"]["all"] == 5 and len(list_scene_files(run / "scenes" / "train")) == 4
    assert metrics["iterations"] == {"semantic": 4, "instance": 4}
    assert metrics["recipe"] == "synthetic-cpu" and metrics["strategy"] == "cell"
    for stage in ("data", "semantic", "preprocess", "instance", "evaluate", "example"):
        assert metrics["seconds"][stage] > 0
    for key, folder in zip(SEMANTICS, ("predicted", "gt"), strict=True):
        summary = metrics[key]
        assert summary["num_scenes"] == 1
        for name in ("ap", "ap50", "ap25"):
            assert math.isfinite(summary[name]) and 0.0 <= summary[name] <= 1.0, (key, name)
        for row in summary["classes"].values():
            assert all(v is None or 0.0 <= v <= 1.0 for v in row.values())
        # the AP of the benchmark files written, recomputed here, is the AP reported
        pairs = []
        for path in val:
            scene = read_ssen_scene(path)
            index = run / "eval" / folder / "pred" / f"{scene.name}.txt"
            pred = read_scannet_instances(index, num_vertices=len(scene))
            pairs.append((encode_gt_ids(scannet20_to_nyu40(scene.semantic), scene.instance), pred))
        again = evaluate_instances(pairs).to_dict()
        assert (again["ap"], again["ap50"], again["ap25"]) == (
            summary["ap"], summary["ap50"], summary["ap25"],
        )  # fmt: skip
    # the example room: its benchmark files are the evaluation's for that room, readable, aligned
    example = metrics["example"]
    scene = read_ssen_scene(val[0])
    assert example["scene"] == scene.name and example["points"] == len(scene)
    index = run / "example" / f"{scene.name}.txt"
    pred = read_scannet_instances(index, num_vertices=len(scene))
    assert len(pred) == example["instances"]
    evaluated = read_scannet_instances(
        run / "eval" / "predicted" / "pred" / f"{scene.name}.txt", num_vertices=len(scene)
    )
    assert [m.tolist() for m in pred.masks] == [m.tolist() for m in evaluated.masks]
    assert pred.labels.tolist() == evaluated.labels.tolist()
    for key in ("png", "truth_png"):
        assert Path(example["files"][key]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<html" in Path(example["files"]["html"]).read_text()[:2000].lower()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_resumed_after_kills_matches_straight_run(runs: dict[str, Path]) -> None:
    straight, killed = _metrics(runs["straight"]), _metrics(runs["killed"])
    assert killed["resumed"] == {"semantic": True, "instance": True}
    assert straight["resumed"] == {"semantic": False, "instance": False}
    for key in SEMANTICS:
        assert killed[key] == straight[key], key
    assert killed["iterations"] == straight["iterations"]
    # both trainings resumed exactly: final checkpoints equal in every piece of training state
    for final in ("semantic/checkpoints/final.pth", "instance/checkpoints/final.pth"):
        differences = state_differences(
            load(runs["straight"] / final), load(runs["killed"] / final)
        )
        assert differences == [], (final, differences[:5])
    name = straight["example"]["scene"]
    masks = sorted(p.name for p in (runs["straight"] / "example" / "pred_mask").iterdir())
    assert masks == sorted(p.name for p in (runs["killed"] / "example" / "pred_mask").iterdir())
    for path in [f"example/{name}.txt", *(f"example/pred_mask/{m}" for m in masks)]:
        assert (runs["straight"] / path).read_bytes() == (runs["killed"] / path).read_bytes()
    # resuming a finished demo redoes nothing and reports the same
    again = run_command(_demo(runs["killed"], "--resume", str(runs["killed"])), timeout=300)
    assert again.returncode == 0, again.stdout
    assert again.stdout.count("already complete, skipped") == 6, again.stdout
    assert _metrics(runs["killed"])[SEMANTICS[0]] == killed[SEMANTICS[0]]


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_refuses_an_existing_folder(runs: dict[str, Path]) -> None:
    run = runs["straight"]
    before = _tree_digest(run)
    refused = run_command(_demo(run), timeout=120)
    assert refused.returncode == 2, refused.stdout
    assert "already exists; pass --resume" in refused.stdout
    assert "Traceback" not in refused.stdout
    other = run_command(_demo(run, "--resume", str(run), "--max-iter", "6"), timeout=120)
    assert other.returncode == 2 and "settings differ" in other.stdout, other.stdout
    assert _tree_digest(run) == before


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    refused = run_command(_demo(tmp_path), timeout=120)
    assert refused.returncode == 2 and "already exists" in refused.stdout, refused.stdout
    resumed = run_command(_demo(tmp_path, "--resume", str(tmp_path)), timeout=120)
    assert resumed.returncode == 2 and "not a demo folder" in resumed.stdout, resumed.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_demo_without_stseg_viz_fails_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "stseg_viz", None)  # import stseg_viz raises ImportError
    with pytest.raises(InstanceInputError, match=r"ssen-instance\[viz\].*--no-view"):
        run_demo(tmp_path / "demo", {"rooms": 5})
    assert not (tmp_path / "demo").exists()


def test_demo_help_lists_its_options() -> None:
    shown = run_command([TOOL, "demo", "--help"], timeout=60)
    assert shown.returncode == 0, shown.stdout
    for option in ("--out", "--resume", "--semantic-weights", "--max-iter", "--strategy"):
        assert option in shown.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_precision_bf16_reaches_both_trainings_and_is_kept_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "bf16"
    done = run_command(_demo(out, "--precision", "bf16", "--no-view"), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    assert json.loads((out / "demo.json").read_text())["precision"] == "bf16"
    for training in ("semantic", "instance"):
        assert json.loads((out / training / "config.json").read_text())["precision"] == "bf16"
    metrics = _metrics(out)
    for semantics in SEMANTICS:
        assert all(math.isfinite(metrics[semantics][k]) for k in ("ap", "ap50", "ap25"))
    # the precision makes the demo: another one on --resume is refused, nothing changed
    before = (out / "metrics.json").read_bytes()
    refused = run_command([TOOL, "demo", "--resume", str(out), "--precision", "fp32"], timeout=120)
    assert refused.returncode == 2 and "--precision" in refused.stdout, refused.stdout
    assert (out / "metrics.json").read_bytes() == before
