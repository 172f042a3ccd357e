"""The command line on a tiny synthetic ScanNet: bad input (exit 2, one line), refusing to clobber
a run (H3), and one short end-to-end run: train, eval, --weights fine-tuning (A9), resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from stseg_train.cli import main

FAST = ["--model", "Res16UNet14A", "--voxel-size", "0.4", "--batch-size", "1"]
QUIET = ["--set", "progress=false", "--set", "tensorboard=false", "--set", "threads=1"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    from stseg_data.preprocess import preprocess
    from stseg_data.synth import write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic("scannet", root / "raw", 3, seed=3)  # scene 0 is validation, 1-2 training
    preprocess("scannet", root / "raw", root / "prepared")
    return root / "prepared"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_missing_and_empty_data(tmp_path: Path) -> None:
    code, out = _run("scannet", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"))
    assert code == 2 and "dataset folder does not exist" in _one_line_error(out)
    (tmp_path / "empty").mkdir()
    code, out = _run("scannet", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r"))
    assert code == 2 and "dataset folder is empty" in _one_line_error(out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.ply").write_text("x")
    code, out = _run("scannet", "--data", str(tmp_path / "other"), "--out", str(tmp_path / "r"))
    assert code == 2 and "train.txt" in _one_line_error(out)
    assert not (tmp_path / "r").exists()


def test_split_naming_absent_scenes(tmp_path: Path, prepared: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text("train/scene9999_00.ply\n")
    code, out = _run("scannet", "--data", str(data), "--out", str(tmp_path / "r"))
    assert code == 2 and "line 1" in _one_line_error(out) and "scene9999_00" in out


def test_bad_options(tmp_path: Path, prepared: Path) -> None:
    base = ["scannet", "--data", str(prepared), "--out", str(tmp_path / "r")]
    code, out = _run(*base, "--gpus", "2")
    if not torch.cuda.is_available():
        assert code == 2 and "only 0 CUDA device" in _one_line_error(out)
    code, out = _run(*base, "--set", "no_such_key=1")
    assert code == 2 and "unknown config key" in _one_line_error(out)
    code, out = _run(*base, "--weights", str(tmp_path / "missing.pth"))
    assert code == 2 and "file not found" in _one_line_error(out)
    code, out = _run(*base, "--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and "config file not found" in _one_line_error(out)
    code, out = _run(*base, "--model", "Res16UNet999")
    assert code == 2 and "unknown model" in _one_line_error(out)


def test_weights_of_another_architecture(tmp_path: Path, prepared: Path) -> None:
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"encoder.layer.weight": torch.zeros(4, 4)}}, foreign)
    code, out = _run("scannet", "--data", str(prepared), "--out", str(tmp_path / "r"), *FAST,
                     "--weights", str(foreign), "--max-iter", "1", *QUIET)  # fmt: skip
    assert code == 2 and "would load" in _one_line_error(out)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, prepared: Path) -> Path:
    """A 2-iteration run (checkpoints every iteration, validation at the end)."""
    run = tmp_path_factory.mktemp("runs") / "run"
    code, out = _run("scannet", "--data", str(prepared), "--out", str(run), *FAST,
                     "--max-iter", "2", *QUIET, "--set", "val_freq=2", "--set", "save_freq=1")  # fmt: skip
    assert code == 0, out
    assert json.loads(out[out.index("{") :])["iteration"] == 2
    return run


@pytest.mark.slow
def test_run_writes_metrics_and_refuses_clobber(trained_run: Path, prepared: Path) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0 and "voxels" in metrics and metrics["scenes"] == 1
    config = json.loads((trained_run / "config.json").read_text())
    assert (config["model"], config["voxel_size"], config["max_iter"]) == ("Res16UNet14A", 0.4, 2)
    # H3: the same --out again is refused and the run is untouched.
    before = (trained_run / "checkpoints" / "final.pth").read_bytes()
    code, out = _run("scannet", "--data", str(prepared), "--out", str(trained_run), *FAST)
    assert code == 2 and "already exists" in _one_line_error(out)
    assert (trained_run / "checkpoints" / "final.pth").read_bytes() == before
    # Resuming it as another dataset is refused.
    code, out = _run("s3dis", "--data", str(prepared), "--resume", str(trained_run))
    assert code == 2 and "dataset: run has 'scannet'" in _one_line_error(out)


@pytest.mark.slow
def test_eval_and_predict_from_the_training_checkpoint(trained_run: Path, prepared: Path) -> None:
    code, out = _run("eval", str(trained_run), "--data", str(prepared), "--rotations", "2",
                     "--out", str(trained_run / "eval.json"))  # fmt: skip
    assert code == 0, out
    assert "mIoU" in out and json.loads((trained_run / "eval.json").read_text())["rotations"] == 2
    # The training checkpoint is an stseg-models checkpoint: Segmenter predicts with it.
    from stseg_data.io import read_scene
    from stseg_models import Segmenter

    scene = read_scene(next((prepared / "train").glob("*.ply")))
    segmenter = Segmenter.from_checkpoint(trained_run / "checkpoints" / "final.pth")
    labels, _ = segmenter.predict(scene.xyz, scene.rgb)
    assert labels.shape == (len(scene.xyz),) and labels.max() < 20
    assert segmenter.spec.voxel_size == 0.4 and segmenter.spec.label_ids[0] == 1


@pytest.mark.slow
def test_weights_into_another_head(trained_run: Path) -> None:
    # A9: a 20-class checkpoint into a 13-class head: the body loads, the head is skipped.
    from stseg_models import build_model
    from stseg_train.components import load_pretrained

    model = build_model("Res16UNet14A", 3, 13)
    report = load_pretrained(
        model, str(trained_run / "checkpoints" / "final.pth"), log_report=False
    )
    assert sorted(key for key, *_ in report.skipped) == ["final.bias", "final.kernel"]
    assert report.fraction > 0.9
    prefixed = trained_run.parent / "prefixed.pth"
    state = torch.load(trained_run / "checkpoints" / "final.pth", weights_only=True)["state_dict"]
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, prefixed)
    report = load_pretrained(build_model("Res16UNet14A", 3, 20), str(prefixed), log_report=False)
    assert report.prefix == "module." and report.exact


@pytest.mark.slow
def test_resume_continues_the_run(trained_run: Path, prepared: Path) -> None:
    code, out = _run("scannet", "--resume", str(trained_run), "--max-iter", "3", *QUIET)
    assert code == 0, out
    final = torch.load(trained_run / "checkpoints" / "final.pth", weights_only=True)
    assert final["iteration"] == 3 and final["config"]["max_iter"] == 3


@pytest.mark.slow
def test_synthetic_main_job_end_to_end(tmp_path: Path) -> None:
    run = tmp_path / "demo"
    code, out = _run("synthetic", "--data", str(tmp_path / "data"), "--out", str(run),
                     "--max-iter", "2", "--voxel-size", "0.4", "--batch-size", "1",
                     "--set", "synthetic_train_scenes=2",
                     "--set", "synthetic_val_scenes=1", *QUIET)  # fmt: skip
    assert code == 0, out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations"] == 2 and 0.0 <= summary["val_miou_points"] <= 1.0
    assert (run / "metrics.json").is_file() and (run / "checkpoints" / "final.pth").is_file()
    prediction = summary["prediction"]
    assert prediction["scene"] == "scene0000_00" and prediction["points"] > 1000
    from stseg_data.ply import read_ply

    ply = read_ply(prediction["files"]["ply"])
    assert len(ply.xyz) == prediction["points"]
    try:
        import stseg_viz  # noqa: F401
    except ImportError:
        return
    assert Path(prediction["files"]["png"]).stat().st_size > 1000
    assert "<html" in Path(prediction["files"]["html"]).read_text()[:2000].lower()


@pytest.mark.slow
def test_export_benchmark_writes_nyu40_ids_per_vertex(
    tmp_path: Path, trained_run: Path, prepared: Path
) -> None:
    out = tmp_path / "submission"
    code, text = _run("export-benchmark", str(trained_run), "--data", str(prepared),
                      "--out", str(out), "--split", "val")  # fmt: skip
    assert code == 0, text
    from stseg_data.io import read_scene
    from stseg_data.labels import SCANNET_NYU40_IDS

    scene = read_scene(prepared / "train" / "scene0000_00.ply")
    ids = [int(v) for v in (out / "scene0000_00.txt").read_text().split()]
    assert len(ids) == len(scene.xyz) and set(ids) <= set(SCANNET_NYU40_IDS)
    code, text = _run("export-benchmark", str(trained_run), "--data", str(prepared),
                      "--out", str(out), "--split", "val")  # fmt: skip
    assert code == 2 and "folder is not empty" in _one_line_error(text)


def test_samples_depend_only_on_their_seed(prepared: Path) -> None:
    import numpy as np

    from stseg_train.config import resolve_config
    from stseg_train.data import SceneSamples, split_items

    config = resolve_config("synthetic", options={"data": str(prepared), "voxel_size": 0.2})
    samples = SceneSamples(split_items(config, "train"), config, train=True)
    a, b, c = samples[(0, 11)], samples[(0, 11)], samples[(0, 12)]
    assert np.array_equal(a["coords"], b["coords"]) and np.array_equal(a["features"], b["features"])
    assert not np.array_equal(a["features"], c["features"])
    assert a["features"].shape[1] == 3 and a["name"] == samples.name(0)
    six = resolve_config("s3dis", options={"data": str(prepared), "voxel_size": 0.2},
                         sets=["num_classes=20"])  # fmt: skip
    sample = SceneSamples(split_items(six, "train"), six, train=False).sample(0, None, train=False)
    assert sample["features"].shape == (len(sample["coords"]), 6)
    narrow = resolve_config("synthetic", options={"data": str(prepared)}, sets=["num_classes=5"])
    from stseg_train.errors import TrainInputError

    with pytest.raises(TrainInputError, match="labels outside"):
        SceneSamples(split_items(narrow, "train"), narrow, train=False).sample(0, None, train=False)
