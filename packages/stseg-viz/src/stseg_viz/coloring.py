"""Choose the colours of a scene's points for one `--color-by` mode, with a matching legend.

`scene_colors(cloud, "label", labels=..., palette=...)` is the single place that decides where the
values come from (the scene file or a separate labels file) and fails clearly when they are absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stseg_data.pointcloud import PointCloud
from stseg_viz.colorize import (
    CORRECT_COLOR,
    ERROR_IGNORED_COLOR,
    WRONG_COLOR,
    colorize_embeddings,
    colorize_errors,
    colorize_instances,
    colorize_labels,
    ignored_mask,
    rgb_to_uint8,
)
from stseg_viz.errors import VizInputError
from stseg_viz.palettes import IGNORE_COLOR, IGNORE_LABEL, Palette

#: The colouring modes of `--color-by`.
COLOR_MODES = ("rgb", "label", "instance", "error", "embedding")

RGB = tuple[int, int, int]


@dataclass
class Coloring:
    """colors: uint8 [N, 3]; legend: (name, colour, point count) rows in display order."""

    mode: str
    colors: np.ndarray
    legend: list[tuple[str, RGB, int]] = field(default_factory=list)


def scene_colors(
    cloud: PointCloud,
    mode: str,
    *,
    labels: np.ndarray | None = None,
    palette: Palette,
    ignore_label: int = IGNORE_LABEL,
    labels_source: str = "--labels",
    embeddings: np.ndarray | None = None,
) -> Coloring:
    """Colours of `cloud`'s points for `mode` (one of `COLOR_MODES`).

    rgb: the scene's colours. label: `labels` if given, else the scene's labels. instance: `labels`
    if given (read as instance ids), else the scene's instance ids. error: `labels` (the prediction)
    against the scene's labels (the truth). embedding: float [N, D] `embeddings`, PCA to colours.
    """
    where = cloud.path or "<scene>"
    if mode == "rgb":
        if cloud.rgb is None:
            raise VizInputError(f"{where}: has no colour (red/green/blue); use another --color-by")
        return Coloring(mode, rgb_to_uint8(cloud.rgb))
    if mode == "label":
        values, source = _pick(labels, cloud.labels, labels_source, where, "semantic labels")
        return Coloring(
            mode,
            colorize_labels(values, palette, ignore_label=ignore_label, where=source),
            label_legend(values, palette, ignore_label),
        )
    if mode == "instance":
        values, _ = _pick(labels, cloud.instances, labels_source, where, "instance ids")
        n = len(np.unique(values[values > 0]))
        return Coloring(mode, colorize_instances(values), [(f"{n} instances", (128, 128, 128), n)])
    if mode == "error":
        if labels is None:
            raise VizInputError("--color-by error needs the prediction as --labels FILE")
        if cloud.labels is None:
            raise VizInputError(
                f"{where}: has no ground-truth labels to compare the prediction with"
            )
        return error_coloring(labels, cloud.labels, ignore_label=ignore_label, where=labels_source)
    if mode == "embedding":
        if embeddings is None:
            raise VizInputError("--color-by embedding needs --embeddings FILE.npy (float [N, D])")
        return Coloring(mode, colorize_embeddings(embeddings))
    raise VizInputError(f"unknown colouring {mode!r}; choose one of {', '.join(COLOR_MODES)}")


def error_coloring(
    pred: np.ndarray,
    truth: np.ndarray,
    *,
    ignore_label: int = IGNORE_LABEL,
    where: str = "<labels>",
) -> Coloring:
    """Correct / wrong / ignored colours with the counts of each in the legend."""
    colors = colorize_errors(pred, truth, ignore_label=ignore_label, where=where)
    ignored = ignored_mask(truth, ignore_label)
    correct = int(((pred == truth) & ~ignored).sum())
    wrong = int((~ignored).sum()) - correct
    legend = [
        ("correct", CORRECT_COLOR, correct),
        ("wrong", WRONG_COLOR, wrong),
        ("ignored", ERROR_IGNORED_COLOR, int(ignored.sum())),
    ]
    return Coloring("error", colors, legend)


def label_legend(labels: np.ndarray, palette: Palette, ignore_label: int = IGNORE_LABEL) -> list:
    """Legend rows for the classes present in `labels` (and "ignored" if any), palette order."""
    ignored = ignored_mask(labels, ignore_label)
    counts = np.bincount(labels[~ignored], minlength=len(palette))
    rows: list[tuple[str, RGB, int]] = [
        (palette.class_names[k], _rgb(palette.colors[k]), int(counts[k]))
        for k in np.flatnonzero(counts)
    ]
    if ignored.any():
        rows.append(("ignored", IGNORE_COLOR, int(ignored.sum())))
    return rows


def _pick(
    given: np.ndarray | None, own: np.ndarray | None, source: str, where: str, what: str
) -> tuple[np.ndarray, str]:
    if given is not None:
        return np.asarray(given, dtype=np.int64), source
    if own is None:
        raise VizInputError(f"{where}: has no {what}; pass them with --labels FILE")
    return own, where


def _rgb(color: np.ndarray) -> RGB:
    return (int(color[0]), int(color[1]), int(color[2]))
