"""Segmentation metrics as pure numpy functions of a confusion matrix.

`confusion[t, p]` counts points of true class t predicted as p. A confusion may carry one extra
column (`confusion_matrix(..., misses=True)`, shape [C, C + 1]): points whose predicted label is
none of the C classes. Such a point is a false negative of its true class and a false positive
of no class, as in the ScanNet benchmark script (evaluate_semantic_label.py files any predicted id
outside its 20 classes under one "unknown" column).

IoU follows that script's get_iou: TP / (TP + FP + FN), so a class that was predicted but has no
ground truth scores 0 and counts in the mean IoU. Only a class absent from both the ground truth
and the predictions has no IoU (NaN, left out of the mean): the official script has no figure for
it either (its get_iou returns NaN there and the script then stops with a TypeError when it prints
the table), and it reports no mean at all; our mIoU is the mean over the classes with a figure.
Accuracy is TP / (ground-truth points): NaN, and left out of its mean, for a class without
ground truth.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    ignore_label: int = 255,
    *,
    misses: bool = False,
) -> np.ndarray:
    """int64 counts of (target, pred) pairs; targets equal to `ignore_label` are skipped.

    pred, target: int arrays of the same shape. Targets outside [0, C) other than the ignore label
    raise ValueError.

    misses=False: a [C, C] matrix, for a network's argmax (which cannot leave [0, C): a prediction
    outside it means `num_classes` is wrong, so it raises ValueError).
    misses=True: a [C, C + 1] matrix whose last column counts points predicted as anything outside
    [0, C) (the ignore label, -1, 20, ...): the official benchmark's handling of predicted ids that
    are not one of its classes, for scoring label files. Each such point lowers the IoU and the
    accuracy of its true class and of no other.
    """
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    target = np.asarray(target).reshape(-1).astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"pred has {pred.size} entries, target {target.size}")
    keep = target != ignore_label
    pred, target = pred[keep], target[keep]
    if target.size and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"target labels outside [0, {num_classes}) and not {ignore_label}")
    outside = (pred < 0) | (pred >= num_classes)
    columns = num_classes + 1 if misses else num_classes
    if outside.any():
        if not misses:
            raise ValueError(
                f"predicted labels outside [0, {num_classes}); to score them as misses, as the "
                f"ScanNet benchmark does, pass misses=True"
            )
        pred = np.where(outside, num_classes, pred)
    flat = np.bincount(target * columns + pred, minlength=num_classes * columns)
    return flat.reshape(num_classes, columns)


def _split(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the [C, C] class part, ground-truth points per class including misses)."""
    c = confusion.shape[0]
    if confusion.ndim != 2 or confusion.shape[1] not in (c, c + 1):
        raise ValueError(f"a confusion matrix is [C, C] or [C, C + 1], got {confusion.shape}")
    return confusion[:, :c], confusion.sum(1)


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
    """float64 [C]: TP / (TP + FP + FN); 0 for a class predicted but absent from the ground truth;
    NaN for a class absent from both (the only case without a figure)."""
    square, gt_points = _split(confusion)
    tp = np.diag(square).astype(np.float64)
    # FN counts misses (predictions outside the classes); FP only predictions of other classes.
    denom = square.sum(0) + gt_points - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """float64 [C]: TP / (points of the class); NaN for classes without ground-truth points."""
    square, total = _split(confusion)
    tp = np.diag(square).astype(np.float64)
    return np.where(total > 0, tp / np.maximum(total, 1), np.nan)


def overall_accuracy(confusion: np.ndarray) -> float:
    """Correct / all scored points (misses included); NaN when nothing was scored."""
    square, gt_points = _split(confusion)
    total = gt_points.sum()
    return float(np.trace(square) / total) if total else float("nan")


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def summarize(confusion: np.ndarray, class_names: list[str] | None = None) -> dict[str, Any]:
    """mIoU, mean accuracy, overall accuracy and the per-class IoU/accuracy table as a JSON dict.

    `confusion` is [C, C] or [C, C + 1] (see `confusion_matrix`); per-class `points` are the
    class's ground-truth points, `misses` (only with the extra column) those predicted as no class.
    """
    iou = per_class_iou(confusion)
    acc = per_class_accuracy(confusion)
    square, gt_points = _split(confusion)
    names = class_names or [str(i) for i in range(len(iou))]
    summary: dict[str, Any] = {
        "miou": _nanmean(iou),
        "mean_accuracy": _nanmean(acc),
        "overall_accuracy": overall_accuracy(confusion),
        "points": int(gt_points.sum()),
        "per_class": {
            name: {
                "iou": None if np.isnan(i) else float(i),
                "accuracy": None if np.isnan(a) else float(a),
                "points": int(n),
            }
            for name, i, a, n in zip(names, iou, acc, gt_points)
        },
    }
    if confusion.shape[1] > square.shape[1]:
        summary["misses"] = int(confusion[:, -1].sum())
        for row, missed in zip(summary["per_class"].values(), confusion[:, -1]):
            row["misses"] = int(missed)
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """A per-class text table followed by the three headline numbers."""
    lines = [f"{'class':<16}{'IoU':>8}{'acc':>8}{'points':>10}"]
    for name, row in summary["per_class"].items():
        iou = "-" if row["iou"] is None else f"{row['iou']:.3f}"
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        lines.append(f"{name:<16}{iou:>8}{acc:>8}{row['points']:>10}")
    lines.append(
        f"mIoU {summary['miou']:.4f}  mean acc {summary['mean_accuracy']:.4f}  "
        f"overall acc {summary['overall_accuracy']:.4f}"
    )
    return "\n".join(lines)
