"""Plots of an evaluation's `metrics.json`: the confusion matrix and per-class IoU / AP bars.

Two layouts are accepted (extra keys are ignored; see the README):

1. Lists in class order:
   {"class_names": [K names], "confusion": [[K x K counts]] (rows = truth, columns = prediction),
    "iou": [K values in 0..1, null = absent class], "miou": x,
    "ap" / "ap50" / "ap25": [K values] (instance AP), "map": x}
2. A per-class table, as `stseg-train evaluate` and `ssen-instance evaluate` write it:
   {"per_class" (or "classes"): {name: {"iou": x, "ap": x, "ap50": x, "ap25": x, ...}},
    "miou": x, "ap": mean, "ap50": mean, "ap25": mean, "confusion": [[...]] (optional)}
   A scalar "ap"/"ap50"/"ap25" is then the mean over classes.

At least one of confusion, iou, ap, ap50, ap25 must be given per class. Without "iou" but with a
confusion matrix, IoU is computed from it: TP / (TP + FP + FN).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from stseg_data.errors import StsegRuntimeError
from stseg_data.outputs import missing_folders
from stseg_viz.errors import VizInputError
from stseg_viz.render import save_png

PER_CLASS_KEYS = ("iou", "ap", "ap50", "ap25")
DISPLAY_NAMES = {"iou": "IoU", "ap": "AP", "ap50": "AP50", "ap25": "AP25"}
#: Mean of each per-class key, and the JSON names it may appear under (first found wins).
MEAN_KEYS = {
    "iou": ("miou", "mIoU"),
    "ap": ("map", "mAP", "ap"),
    "ap50": ("map50", "ap50"),
    "ap25": ("map25", "ap25"),
}


def load_metrics(path: str | os.PathLike[str]) -> dict:
    """class_names, float [K] arrays per key ("confusion" [K, K]) and "mean_<key>" scalars."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise VizInputError(f"{path}: no such metrics file") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VizInputError(f"{path}: not a readable JSON metrics file ({error})") from error
    if not isinstance(raw, dict):
        raise VizInputError(f"{path}: expected a JSON object")
    table = raw.get("per_class", raw.get("classes"))
    table = table if isinstance(table, dict) else {}
    names = raw.get("class_names", list(table))
    if not isinstance(names, list) or not names:
        raise VizInputError(f'{path}: no class names (a "class_names" list or a "per_class" table)')
    names = [str(name) for name in names]
    k = len(names)
    metrics: dict = {"class_names": names, "source": str(path)}
    if raw.get("confusion") is not None:
        confusion = _array(raw["confusion"], path, "confusion")
        if confusion.shape != (k, k):
            raise VizInputError(
                f"{path}: confusion is {confusion.shape}, expected ({k}, {k}) for {k} classes"
            )
        metrics["confusion"] = confusion
    for key in PER_CLASS_KEYS:
        value = raw.get(key)
        if isinstance(value, list):
            values = _array(value, path, key)
        elif table and any(isinstance(row, dict) and key in row for row in table.values()):
            values = _array([_cell(table.get(name), key) for name in names], path, key)
        else:
            continue
        if values.shape != (k,):
            raise VizInputError(f"{path}: {key} has {values.size} values, expected {k}")
        metrics[key] = values
    if "iou" not in metrics and "confusion" in metrics:
        metrics["iou"] = iou_from_confusion(metrics["confusion"])
    if not any(key in metrics for key in ("confusion", *PER_CLASS_KEYS)):
        raise VizInputError(
            f"{path}: nothing to plot (needs confusion, iou, ap, ap50 or ap25 per class)"
        )
    for key, aliases in MEAN_KEYS.items():
        for alias in aliases:
            if isinstance(raw.get(alias), (int, float)) and not isinstance(raw.get(alias), bool):
                metrics[f"mean_{key}"] = float(raw[alias])
                break
    return metrics


def _cell(row: object, key: str) -> float | None:
    value = row.get(key) if isinstance(row, dict) else None
    return value if isinstance(value, (int, float)) else None


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """float [K]: TP / (TP + FP + FN) per class; NaN where the class never occurs nor is predicted."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def plot_metrics(
    metrics_file: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write confusion.png (if a confusion matrix is given) and iou.png / ap*.png into `out_dir`.

    All or nothing: the PNGs are written into a hidden staging folder inside `out_dir` and moved
    into place only once every one is complete, so a full disk leaves `out_dir` as it was (and
    removes `out_dir` again if this call created it). Files of the same names are replaced.
    """
    metrics = load_metrics(metrics_file)
    figures: dict[str, Figure] = {}
    if "confusion" in metrics:
        figures["confusion.png"] = confusion_figure(metrics["confusion"], metrics["class_names"])
    for key in PER_CLASS_KEYS:
        if key in metrics:
            values = metrics[key]
            mean = metrics.get(f"mean_{key}")
            if mean is None:
                finite = values[np.isfinite(values)]
                mean = float(finite.mean()) if finite.size else math.nan
            figure = bars_figure(values, metrics["class_names"], DISPLAY_NAMES[key], mean)
            figures[f"{key}.png"] = figure
    return save_pngs_together(figures, Path(out_dir))


def save_pngs_together(figures: dict[str, Figure], out_dir: Path) -> list[Path]:
    """Write each figure as `out_dir/<name>`, all or none (see `plot_metrics`)."""
    made = missing_folders(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".stseg-metrics.", dir=out_dir))
    try:
        for name, figure in figures.items():
            try:
                save_png(figure, staging / name)
            except (
                StsegRuntimeError
            ) as error:  # name the file the user asked for, not the staging one
                message = str(error).replace(str(staging / name), str(out_dir / name))
                raise StsegRuntimeError(message) from error
        for name in figures:
            os.replace(staging / name, out_dir / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # deepest first; only folders this call made, and only if empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    staging.rmdir()
    return [out_dir / name for name in figures]


def confusion_figure(confusion: np.ndarray, names: list[str]) -> Figure:
    """Row-normalised confusion matrix (each truth row sums to 1), with the counts' scale noted."""
    k = len(names)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(
        confusion, rows, out=np.zeros_like(confusion, dtype=float), where=rows > 0
    )
    side = max(5.0, 0.38 * k + 2.5)
    figure = Figure(figsize=(side + 1.0, side), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(k), names, rotation=90, fontsize=8)
    axes.set_yticks(range(k), names, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("ground truth")
    axes.set_title(f"confusion matrix (row-normalised, {int(confusion.sum()):,} points)")
    if k <= 25:
        for (i, j), value in np.ndenumerate(normalised):
            if value >= 0.01:
                color = "white" if value > 0.6 else "black"
                axes.text(
                    j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=6, color=color
                )
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    return figure


def bars_figure(values: np.ndarray, names: list[str], what: str, mean: float) -> Figure:
    """Per-class horizontal bars in [0, 1]; absent classes (NaN) are labelled "n/a"."""
    k = len(names)
    figure = Figure(figsize=(7.0, max(3.0, 0.3 * k + 1.2)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    shown = np.nan_to_num(values, nan=0.0)
    positions = np.arange(k)[::-1]
    axes.barh(positions, shown, color="#4c72b0")
    for y, value in zip(positions, values):
        label = "n/a" if not np.isfinite(value) else f"{100 * value:.1f}"
        axes.text(min(float(np.nan_to_num(value)), 1.0) + 0.01, y, label, va="center", fontsize=8)
    axes.set_yticks(positions, names, fontsize=8)
    axes.set_xlim(0.0, 1.1)
    if np.isfinite(mean):
        axes.axvline(mean, color="#c44e52", linestyle="--", linewidth=1)
    axes.set_title(f"per-class {what} (mean {100 * mean:.1f})" if np.isfinite(mean) else what)
    figure.tight_layout()
    return figure


def _array(value: object, path: Path, key: str) -> np.ndarray:
    try:
        return np.array(value, dtype=np.float64)  # JSON null becomes NaN
    except (TypeError, ValueError) as error:
        raise VizInputError(f"{path}: {key} must be numbers ({error})") from error
