"""Segmentation metrics as pure numpy functions of a confusion matrix.

`confusion[t, p]` counts points of true class t predicted as p; rows of classes absent from the
ground truth give NaN IoU/accuracy and are left out of the means (as the ScanNet benchmark does).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_label: int = 255
) -> np.ndarray:
    """int64 [C, C] counts of (target, pred) pairs; targets equal to `ignore_label` are skipped.

    pred, target: int arrays of the same shape. Targets outside [0, C) other than the ignore label,
    or predictions outside [0, C), raise ValueError.
    """
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    target = np.asarray(target).reshape(-1).astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"pred has {pred.size} entries, target {target.size}")
    keep = target != ignore_label
    pred, target = pred[keep], target[keep]
    if target.size and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"target labels outside [0, {num_classes}) and not {ignore_label}")
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"predicted labels outside [0, {num_classes})")
    flat = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
    """float64 [C]: TP / (TP + FP + FN); NaN for a class absent from both target and prediction."""
    tp = np.diag(confusion).astype(np.float64)
    denom = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)
    # A class with no ground truth is not scored, even if it was (wrongly) predicted.
    return np.where(confusion.sum(1) > 0, iou, np.nan)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """float64 [C]: TP / (points of the class); NaN for classes without ground-truth points."""
    tp = np.diag(confusion).astype(np.float64)
    total = confusion.sum(1)
    return np.where(total > 0, tp / np.maximum(total, 1), np.nan)


def overall_accuracy(confusion: np.ndarray) -> float:
    """Correct / all scored points; NaN when nothing was scored."""
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def summarize(confusion: np.ndarray, class_names: list[str] | None = None) -> dict[str, Any]:
    """mIoU, mean accuracy, overall accuracy and the per-class IoU/accuracy table as a JSON dict."""
    iou = per_class_iou(confusion)
    acc = per_class_accuracy(confusion)
    names = class_names or [str(i) for i in range(len(iou))]
    return {
        "miou": _nanmean(iou),
        "mean_accuracy": _nanmean(acc),
        "overall_accuracy": overall_accuracy(confusion),
        "points": int(confusion.sum()),
        "per_class": {
            name: {
                "iou": None if np.isnan(i) else float(i),
                "accuracy": None if np.isnan(a) else float(a),
                "points": int(n),
            }
            for name, i, a, n in zip(names, iou, acc, confusion.sum(1))
        },
    }


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
