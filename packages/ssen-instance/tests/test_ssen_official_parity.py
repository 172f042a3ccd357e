"""Cases where ScanNet's evaluate_semantic_instance.py is the reference, each with its AP worked
out by hand: a mask file named twice in `<scene>.txt`, predictions whose label is none of the 18
instance classes, and the class state in which the script itself stops (AP 0 here)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from ssen_instance.errors import PredictionFileError
from ssen_instance.evaluate import INSTANCE_NYU40_IDS, encode_gt_ids, evaluate_instances
from ssen_instance.export import read_scannet_instances
from ssen_instance.instances import Instances

CHAIR = 5  # NYU40 ids
WALL = 1


def _two_chairs() -> np.ndarray:
    """400 vertices: chair instance 1 on 0..199, chair instance 2 on 200..399."""
    return encode_gt_ids(np.full(400, CHAIR), np.repeat([1, 2], 200))


def _write(folder: Path, lines: list[str], masks: dict[str, range]) -> Path:
    """`folder/s.txt` with `lines`, and `pred_mask/<name>` 0/1 files over 400 vertices."""
    (folder / "pred_mask").mkdir(exist_ok=True)
    for name, inside in masks.items():
        values = np.zeros(400, np.int64)
        values[list(inside)] = 1
        (folder / "pred_mask" / name).write_text("".join(f"{v}\n" for v in values))
    index = folder / "s.txt"
    index.write_text("".join(line + "\n" for line in lines))
    return index


def test_mask_named_twice_is_one_prediction(tmp_path: Path) -> None:
    # Line 3 names line 1's mask again. The official reader keys lines by mask path, so there
    # are two predictions: chair 1 with confidence 0.7 (line 3's) and chair 2 with 0.5; both
    # match their chair: two true positives, no false positive -> AP 1.
    # (Scored as three predictions, chair 1 would take 0.9 and the 0.7 copy would be a false
    # positive: scores .5 T, .7 F, .9 T -> (p, r) = (2/3, 1), (1/2, 1/2), (1, 1/2), (1, 0);
    # step widths (r[i-1] - r[i+1]) / 2 with r[-1] = r[0]: .25 each ->
    # AP = (2/3 + 1/2 + 1 + 1) / 4 = 0.7917.)
    index = _write(
        tmp_path,
        ["pred_mask/a.txt 5 0.9", "pred_mask/b.txt 5 0.5", "pred_mask/a.txt 5 0.7"],
        {"a.txt": range(0, 200), "b.txt": range(200, 400)},
    )
    pred = read_scannet_instances(index, num_vertices=400)
    assert len(pred) == 2 and pred.scores.tolist() == [0.7, 0.5]
    metrics = evaluate_instances([(_two_chairs(), pred)])
    assert metrics.per_class()["chair"]["ap"] == pytest.approx(1.0)
    assert metrics.ap50 == pytest.approx(1.0) and metrics.ap25 == pytest.approx(1.0)
    # the same masks as three in-memory predictions are three: the 0.7917 above
    three = Instances(
        [np.arange(200), np.arange(200, 400), np.arange(200)], [5] * 3, [0.9, 0.5, 0.7], 400
    )
    assert evaluate_instances([(_two_chairs(), three)]).ap50 == pytest.approx(
        (2 / 3 + 1 / 2 + 1 + 1) / 4
    )


def test_repeated_mask_keeps_first_place_and_last_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A dict keeps a key where it was first inserted and takes the last value; `./` and `x/../`
    # spell the same path after normalisation, as os.path.abspath in the official reader.
    index = _write(
        tmp_path,
        [
            "pred_mask/a.txt 5 0.9",
            "pred_mask/b.txt 7 0.5",
            "./pred_mask/a.txt 39 0.2",
            "pred_mask/../pred_mask/b.txt 7 0.6",
        ],
        {"a.txt": range(0, 150), "b.txt": range(150, 400)},
    )
    with caplog.at_level(logging.WARNING, logger="ssen_instance.export"):
        pred = read_scannet_instances(index, num_vertices=400)
    assert pred.labels.tolist() == [39, 7] and pred.scores.tolist() == [0.2, 0.6]
    assert [m.size for m in pred.masks] == [150, 250]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and "line 3" in warned[0] and "(line 1)" in warned[0]


def test_labels_outside_the_classes_are_ignored_unread(tmp_path: Path) -> None:
    # Chair 1 found (0.9); a wall-labelled mask exactly on chair 2 (0.8) and labels 0, 41, -1
    # whose mask files do not exist. The official script skips every line whose label is not an
    # instance class before it opens the mask, so only the chair prediction is scored:
    # one true positive, chair 2 missed -> (p, r) = (1, 1/2), artificial (1, 0);
    # step widths (1/2 - 0) / 2 = 1/4 twice -> AP = 1/2 at every threshold.
    index = _write(
        tmp_path,
        [
            "pred_mask/a.txt 5 0.9",
            "pred_mask/b.txt 1 0.8",
            "pred_mask/none0.txt 0 0.7",
            "pred_mask/none41.txt 41 0.6",
            "pred_mask/neg.txt -1 0.5",
        ],
        {"a.txt": range(0, 200), "b.txt": range(200, 400)},
    )
    pred = read_scannet_instances(index, num_vertices=400, only_labels=INSTANCE_NYU40_IDS)
    assert pred.labels.tolist() == [5, WALL, 0, 41, -1]
    assert [m.size for m in pred.masks] == [200, 0, 0, 0, 0]  # their masks were not opened
    metrics = evaluate_instances([(_two_chairs(), pred)])
    assert metrics.skipped_predictions == 4
    assert metrics.per_class()["chair"] == pytest.approx({"ap": 0.5, "ap50": 0.5, "ap25": 0.5})
    # the same as with the wall mask read: a label outside the classes has no effect at all
    full = Instances([np.arange(200), np.arange(200, 400)], [CHAIR, WALL], [0.9, 0.8], 400)
    assert evaluate_instances([(_two_chairs(), full)]).ap50 == pytest.approx(0.5)
    # reading every mask (the default) checks them all, so the missing files are an error
    with pytest.raises(PredictionFileError, match=r"none0\.txt does not exist"):
        read_scannet_instances(index, num_vertices=400)


def test_where_the_official_script_stops_ap_is_zero() -> None:
    # Scene 1: one chair (200 vertices), no prediction. Scene 2: no chair, a chair prediction on
    # 150 unannotated vertices (ignored: all of it is void). The class has ground truth and a
    # prediction but no scored entry: the official script indexes an empty array (IndexError).
    # Here: the chair is missed, recall 0 -> AP 0 at every threshold, and it is the only class
    # with ground truth, so the averages are 0.
    scene1 = encode_gt_ids(np.full(200, CHAIR), np.ones(200, np.int64))
    scene2 = encode_gt_ids(np.zeros(300, np.int64), np.zeros(300, np.int64))
    on_void = Instances([np.arange(150)], [CHAIR], [0.9], 300)
    metrics = evaluate_instances([(scene1, Instances.empty(200)), (scene2, on_void)])
    assert metrics.per_class()["chair"] == {"ap": 0.0, "ap50": 0.0, "ap25": 0.0}
    assert (metrics.mean_ap, metrics.ap50, metrics.ap25) == (0.0, 0.0, 0.0)
