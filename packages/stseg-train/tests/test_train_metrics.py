"""Metrics against slow, obviously-correct loops on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stseg_train.metrics import confusion_matrix, format_table, summarize


def _slow(pred, target, c, ignore):
    conf = [[0] * c for _ in range(c)]
    for p, t in zip(pred.tolist(), target.tolist()):
        if t != ignore:
            conf[t][p] += 1
    ious, accs = [], []
    for k in range(c):
        tp = conf[k][k]
        fn = sum(conf[k]) - tp
        fp = sum(conf[r][k] for r in range(c)) - tp
        # as ScanNet's get_iou: only TP + FP + FN == 0 has no IoU (a predicted class without
        # ground truth scores 0); accuracy needs ground truth
        ious.append(tp / (tp + fp + fn) if tp + fp + fn else None)
        accs.append(tp / (tp + fn) if tp + fn else None)
    total = sum(map(sum, conf))
    oa = sum(conf[k][k] for k in range(c)) / total
    valid = [v for v in ious if v is not None]
    valid_acc = [v for v in accs if v is not None]
    return conf, ious, sum(valid) / len(valid), sum(valid_acc) / len(valid_acc), oa


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = 6
    target = rng.integers(0, c - 1, 500)  # class 5 never in ground truth
    target[rng.random(500) < 0.1] = 255
    pred = np.where(
        rng.random(500) < 0.6, np.where(target == 255, 0, target), rng.integers(0, c, 500)
    )
    conf = confusion_matrix(pred, target, c)
    ref_conf, ref_iou, ref_miou, ref_macc, ref_oa = _slow(pred, target, c, 255)
    assert conf.tolist() == ref_conf
    summary = summarize(conf)
    got = [summary["per_class"][str(k)]["iou"] for k in range(c)]
    assert got == pytest.approx(ref_iou)
    assert summary["miou"] == pytest.approx(ref_miou)
    assert summary["mean_accuracy"] == pytest.approx(ref_macc)
    assert summary["overall_accuracy"] == pytest.approx(ref_oa)
    # class 5 has no ground truth but is predicted: IoU 0, counted in the mean; accuracy none
    assert (pred[target != 255] == 5).any()
    assert summary["per_class"]["5"]["iou"] == 0.0
    assert summary["per_class"]["5"]["accuracy"] is None


def test_perfect_and_empty() -> None:
    labels = np.array([0, 1, 1, 2, 255])
    summary = summarize(confusion_matrix(labels.clip(0, 2), labels, 3), ["a", "b", "c"])
    assert (summary["miou"], summary["overall_accuracy"], summary["points"]) == (1.0, 1.0, 4)
    assert "mIoU 1.0000" in format_table(summary)
    empty = summarize(confusion_matrix(np.zeros(2, int), np.full(2, 255), 3))
    assert math.isnan(empty["miou"]) and empty["points"] == 0


def test_bad_metric_inputs() -> None:
    with pytest.raises(ValueError, match="entries"):
        confusion_matrix(np.zeros(3, int), np.zeros(4, int), 2)
    with pytest.raises(ValueError, match="target labels outside"):
        confusion_matrix(np.zeros(2, int), np.array([0, 7]), 2)
    with pytest.raises(ValueError, match="predicted labels outside"):
        confusion_matrix(np.array([0, 9]), np.zeros(2, int), 2)
