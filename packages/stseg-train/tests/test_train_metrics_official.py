"""The three cases where the ScanNet benchmark script (evaluate_semantic_label.py) is the
reference, with every expected figure worked out by hand from the confusion matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stseg_data.labels import nyu40_to_scannet20
from stseg_train.metrics import confusion_matrix, format_table, summarize


def test_predicted_class_without_ground_truth_scores_zero_and_counts() -> None:
    # 3 classes; class 2 has no ground truth but one point is predicted as it.
    #   gt 0: pred 0, 2      gt 1: pred 1, 1
    # confusion rows: [1 0 1], [0 2 0], [0 0 0]
    # IoU 0 = 1 / (1 + 0 + 1) = 0.5, IoU 1 = 2 / 2 = 1, IoU 2 = 0 / (0 + 1 + 0) = 0
    # mIoU = (0.5 + 1 + 0) / 3 = 0.5 (it was 0.75 when class 2 was left out)
    conf = confusion_matrix(np.array([0, 2, 1, 1]), np.array([0, 0, 1, 1]), 3)
    assert conf.tolist() == [[1, 0, 1], [0, 2, 0], [0, 0, 0]]
    summary = summarize(conf)
    assert [summary["per_class"][k]["iou"] for k in "012"] == [0.5, 1.0, 0.0]
    assert summary["miou"] == pytest.approx(0.5)
    # accuracy needs ground truth: none for class 2, mean over classes 0 and 1
    assert summary["per_class"]["2"]["accuracy"] is None
    assert summary["mean_accuracy"] == pytest.approx(0.75)


def test_class_absent_everywhere_has_no_iou_and_is_left_out() -> None:
    # Class 3 neither in the ground truth nor predicted: TP + FP + FN = 0, no figure (the
    # official script has none either: its get_iou returns NaN and its table print then fails).
    conf = confusion_matrix(np.array([0, 1]), np.array([0, 1]), 4)
    summary = summarize(conf)
    assert summary["per_class"]["3"]["iou"] is None
    # classes 0, 1 perfect, class 2 and 3 absent: mean over the two with a figure
    assert summary["miou"] == 1.0


def test_predictions_outside_the_classes_are_misses() -> None:
    # 4 classes (class 3 absent everywhere); predictions 7, 255 and -1 are no class.
    #   gt 0: pred 0, 0, 1, 2, 7     gt 1: pred 1, 1, 255     gt 2: pred -1
    #   gt 255 (ignored): pred 2     -> not counted at all
    # confusion [C, C+1], last column = misses:
    #   [2 1 1 0 | 1]
    #   [0 2 0 0 | 1]
    #   [0 0 0 0 | 1]
    #   [0 0 0 0 | 0]
    # IoU 0 = 2 / (2 + FP 0 + FN 3) = 0.4
    # IoU 1 = 2 / (2 + FP 1 + FN 1) = 0.5
    # IoU 2 = 0 / (0 + FP 1 + FN 1) = 0      (a miss adds FN to its class and FP to none)
    # IoU 3: nothing at all -> none
    # mIoU = (0.4 + 0.5 + 0) / 3 = 0.3
    # accuracy: 2/5, 2/3, 0/1 -> mean (0.4 + 0.6667 + 0) / 3 = 0.35556; overall 4 / 9
    pred = np.array([0, 0, 1, 2, 7, 1, 1, 255, -1, 2])
    target = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 255])
    conf = confusion_matrix(pred, target, 4, misses=True)
    assert conf.tolist() == [[2, 1, 1, 0, 1], [0, 2, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    summary = summarize(conf)
    ious = [summary["per_class"][k]["iou"] for k in "0123"]
    assert ious[:3] == pytest.approx([0.4, 0.5, 0.0]) and ious[3] is None
    assert summary["miou"] == pytest.approx(0.3)
    assert summary["mean_accuracy"] == pytest.approx((0.4 + 2 / 3 + 0.0) / 3)
    assert summary["overall_accuracy"] == pytest.approx(4 / 9)
    assert summary["points"] == 9 and summary["misses"] == 3
    assert [summary["per_class"][k]["misses"] for k in "0123"] == [1, 1, 1, 0]
    assert "mIoU 0.3000" in format_table(summary)


def test_misses_are_refused_without_the_extra_column() -> None:
    # a network's argmax never leaves [0, C): outside it, num_classes is wrong
    with pytest.raises(ValueError, match="misses=True"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    # with only in-range predictions the extra column is zero and nothing else changes
    plain = confusion_matrix(np.array([0, 2]), np.array([0, 1]), 3)
    extra = confusion_matrix(np.array([0, 2]), np.array([0, 1]), 3, misses=True)
    assert extra[:, :3].tolist() == plain.tolist() and extra[:, 3].tolist() == [0, 0, 0]
    assert summarize(extra)["miou"] == summarize(plain)["miou"]
    with pytest.raises(ValueError, match=r"\[C, C\] or \[C, C \+ 1\]"):
        summarize(np.zeros((3, 5), np.int64))


def test_benchmark_files_in_nyu40_ids() -> None:
    # How the official script sees a scene's files: NYU40 ids per vertex. Ground truth outside the
    # 20 classes (0 unannotated, 13 blinds) is skipped; a prediction outside them (13, 40) is a
    # miss. Vertices (gt -> pred): wall->wall, wall->blinds, wall->otherprop, floor->floor,
    # 0->wall, blinds->wall.
    # wall (train 0): TP 1, FN 2 -> IoU 1/3; floor (train 1): IoU 1; nothing else has a figure.
    gt = nyu40_to_scannet20(np.array([1, 1, 1, 2, 0, 13]))
    pred = nyu40_to_scannet20(np.array([1, 13, 40, 2, 1, 1]))
    summary = summarize(confusion_matrix(pred, gt, 20, misses=True))
    assert summary["per_class"]["0"]["iou"] == pytest.approx(1 / 3)
    assert summary["per_class"]["1"]["iou"] == 1.0
    assert sum(row["iou"] is not None for row in summary["per_class"].values()) == 2
    assert summary["miou"] == pytest.approx((1 / 3 + 1) / 2)
    assert summary["points"] == 4 and summary["misses"] == 2
    assert not math.isnan(summary["overall_accuracy"])
