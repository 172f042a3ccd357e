"""Metric plots (both metrics.json layouts) and training curves from log.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from stseg_viz.cli import main
from stseg_viz.curves import plot_curves, read_log
from stseg_viz.errors import VizInputError
from stseg_viz.metric_plots import iou_from_confusion, load_metrics, plot_metrics


def test_iou_from_confusion_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 50, (5, 5)).astype(float)
    confusion[4] = 0
    confusion[:, 4] = 0  # class 4 absent and never predicted: IoU undefined
    iou = iou_from_confusion(confusion)
    for k in range(4):
        tp = confusion[k, k]
        fp = confusion[:, k].sum() - tp
        fn = confusion[k].sum() - tp
        assert iou[k] == pytest.approx(tp / (tp + fp + fn))
    assert np.isnan(iou[4])


def test_list_layout_writes_confusion_and_iou(tmp_path: Path) -> None:
    metrics = {
        "class_names": ["wall", "floor", "chair"],
        "confusion": [[90, 5, 5], [2, 98, 0], [10, 0, 40]],
        "iou": [0.8, 0.9, None],
        "miou": 0.85,
        "epoch": 3,  # extra keys are ignored
    }
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    loaded = load_metrics(path)
    assert np.isnan(loaded["iou"][2]) and loaded["mean_iou"] == 0.85
    written = plot_metrics(path, tmp_path / "plots")
    assert [p.name for p in written] == ["confusion.png", "iou.png"]
    for png in written:
        image = imread(png)
        assert image.shape[0] > 200 and (image[..., :3] < 0.9).any()


def test_per_class_layouts_of_the_trainer_and_ssen(tmp_path: Path) -> None:
    trainer = {
        "miou": 0.5,
        "overall_accuracy": 0.9,
        "per_class": {
            "wall": {"iou": 0.7, "accuracy": 0.8, "points": 10},
            "floor": {"iou": None, "accuracy": None, "points": 0},
        },
    }
    (tmp_path / "train.json").write_text(json.dumps(trainer))
    loaded = load_metrics(tmp_path / "train.json")
    assert loaded["class_names"] == ["wall", "floor"]
    assert loaded["iou"][0] == 0.7 and np.isnan(loaded["iou"][1])

    ssen = {"ap": 0.3, "ap50": 0.5, "ap25": 0.6,
            "classes": {"chair": {"ap": 0.4, "ap50": 0.6, "ap25": 0.7},
                        "table": {"ap": 0.2, "ap50": 0.4, "ap25": 0.5}}}  # fmt: skip
    (tmp_path / "ssen.json").write_text(json.dumps(ssen))
    loaded = load_metrics(tmp_path / "ssen.json")
    assert loaded["ap50"].tolist() == [0.6, 0.4] and loaded["mean_ap"] == 0.3
    names = [p.name for p in plot_metrics(tmp_path / "ssen.json", tmp_path / "out")]
    assert names == ["ap.png", "ap50.png", "ap25.png"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable JSON metrics file"),
        (
            '{"class_names": ["a", "b"], "confusion": [[1, 2]]}',
            r"confusion is \(1, 2\), expected \(2, 2\)",
        ),
        ('{"class_names": ["a", "b"], "iou": [0.1]}', "iou has 1 values, expected 2"),
        ('{"class_names": ["a"]}', "nothing to plot"),
        ("[1, 2]", "expected a JSON object"),
        ('{"iou": [0.5]}', "no class names"),
    ],
)
def test_bad_metrics_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(VizInputError, match=message):
        load_metrics(path)
    result = CliRunner().invoke(main, ["metrics", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "bad.json" in result.output


def _write_log(path: Path, tail: str = "") -> None:
    lines = [json.dumps({"config": "x"})]
    for it in range(0, 200, 10):
        lines.append(
            json.dumps({"iter": it, "loss": 2.0 / (1 + it / 50), "lr": 0.1 * (1 - it / 200)})
        )
        if it % 50 == 0:
            lines.append(json.dumps({"iter": it, "val_miou": it / 400}))
    path.write_text("\n".join(lines) + "\n" + tail)


def test_curves_from_a_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _write_log(run / "log.jsonl", tail='{"iter": 200, "lo')  # a run still writing
    series = read_log(run / "log.jsonl")
    assert len(series["loss"]) == 20 and len(series["lr"]) == 20
    assert series["val_miou"][:, 0].tolist() == [0, 50, 100, 150]
    counts = plot_curves(run, tmp_path / "curves.png")
    assert counts == {"loss": 20, "lr": 20, "val_miou": 4}
    assert imread(tmp_path / "curves.png").shape[0] > 300
    result = CliRunner().invoke(main, ["curves", str(run), "--out", str(tmp_path / "c.png")])
    assert result.exit_code == 0 and (tmp_path / "c.png").exists()


def test_bad_logs_name_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"iter": 1, "loss": 1.0}\n{broken\n{"iter": 2, "loss": 0.5}\n')
    with pytest.raises(VizInputError, match=r"log\.jsonl:2: not a JSON object"):
        read_log(log)
    log.write_text('{"note": "nothing"}\n')
    with pytest.raises(VizInputError, match="no loss, lr or val_miou values"):
        read_log(log)
    result = CliRunner().invoke(main, ["curves", str(tmp_path / "norun"), "--out", "c.png"])
    assert result.exit_code == 2 and "norun/log.jsonl: no training log" in result.output


def test_loss_smoothing_is_a_centred_mean() -> None:
    from stseg_viz.curves import _smooth

    values = np.random.default_rng(0).normal(size=50)
    smooth = _smooth(values, window=5)
    reference = [values[max(i - 2, 0) : i + 3].mean() for i in range(50)]
    assert np.allclose(smooth, reference)
