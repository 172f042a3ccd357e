"""Training curves (loss, learning rate, validation mIoU) from a run's `log.jsonl`.

Log format (one JSON object per line, written by the trainer as it goes; keys other than these are
ignored, so the trainer may log more):

    {"iter": 100, "loss": 1.73, "lr": 0.1}            # a training step (either value optional)
    {"iter": 500, "val_miou": 0.42}                   # a validation pass

"step" is accepted for "iter", "val/miou" or "val_mIoU" for "val_miou". Blank lines are skipped; a
truncated last line (a run still writing) is ignored; any other malformed line is an error naming
the file and line number.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from stseg_viz.errors import VizInputError
from stseg_viz.render import save_png

SERIES = {"loss": ("loss", "train_loss"), "lr": ("lr", "learning_rate"),
          "val_miou": ("val_miou", "val/miou", "val_mIoU")}  # fmt: skip
STEP_KEYS = ("iter", "step", "iteration")


def find_log(run: str | os.PathLike[str]) -> Path:
    """`run` itself if it is a file, else `run/log.jsonl`."""
    run = Path(run)
    log = run if run.is_file() else run / "log.jsonl"
    if not log.is_file():
        raise VizInputError(f"{log}: no training log (expected RUN/log.jsonl or a .jsonl file)")
    return log


def read_log(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """{"loss"|"lr"|"val_miou": float [M, 2] rows of (iteration, value)}, each sorted by iteration."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise VizInputError(f"{path}: cannot read the log ({error})") from error
    points: dict[str, list[tuple[float, float]]] = {name: [] for name in SERIES}
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == last:  # a run still writing its last line
                continue
            raise VizInputError(f"{path}:{number + 1}: not a JSON object ({error.msg})") from error
        if not isinstance(record, dict):
            raise VizInputError(f"{path}:{number + 1}: expected a JSON object per line")
        step = _number(next((record[key] for key in STEP_KEYS if key in record), None))
        if step is None:
            continue  # e.g. a header line with the configuration
        for name, aliases in SERIES.items():
            value = _number(next((record[key] for key in aliases if key in record), None))
            if value is not None and math.isfinite(value):
                points[name].append((step, value))
    series = {}
    for name, rows in points.items():
        array = np.array(rows, dtype=np.float64).reshape(-1, 2)
        series[name] = array[np.argsort(array[:, 0], kind="stable")]
    if not any(len(values) for values in series.values()):
        raise VizInputError(f"{path}: no loss, lr or val_miou values with an iteration number")
    return series


def plot_curves(run: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, int]:
    """Write a PNG with three stacked panels (loss, learning rate, validation mIoU) sharing x.

    Returns the number of points of each series.
    """
    log = find_log(run)
    series = read_log(log)
    figure = Figure(figsize=(8, 9), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(3, 1, sharex=True)
    titles = {"loss": "training loss", "lr": "learning rate", "val_miou": "validation mIoU"}
    for ax, (name, values) in zip(axes, series.items()):
        ax.set_title(titles[name], fontsize=10)
        ax.grid(True, alpha=0.3)
        if not len(values):
            ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", color="0.5")
            continue
        marker = "o" if name == "val_miou" or len(values) < 50 else None
        ax.plot(values[:, 0], values[:, 1], marker=marker, markersize=3, linewidth=1)
        if name == "loss" and len(values) >= 20:
            ax.plot(values[:, 0], _smooth(values[:, 1]), color="#c44e52", linewidth=1.5)
        if name == "val_miou":
            best = int(np.argmax(values[:, 1]))
            ax.annotate(
                f"best {values[best, 1]:.3f} @ {values[best, 0]:.0f}",
                (values[best, 0], values[best, 1]),
                fontsize=8,
                textcoords="offset points",
                xytext=(0, -14),
                ha="center",
            )
    axes[-1].set_xlabel("iteration")
    figure.suptitle(str(log.parent.name if log.name == "log.jsonl" else log.name))
    figure.tight_layout()
    save_png(figure, out)
    return {name: len(values) for name, values in series.items()}


def _smooth(values: np.ndarray, window: int = 21) -> np.ndarray:
    """Centred moving average (same length, shrinking at the ends), to show a noisy loss's trend."""
    half = window // 2
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(len(values))
    start = np.maximum(index - half, 0)
    stop = np.minimum(index + half + 1, len(values))
    return (cumulative[stop] - cumulative[start]) / (stop - start)


def _number(value: object) -> float | None:
    """`value` as a float if it is a JSON number (not a bool), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
