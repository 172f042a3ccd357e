"""Turn per-point values (labels, instance ids, embeddings, prediction vs truth) into uint8 colours.

Every function is pure: arrays in, `uint8 [N, 3]` colours out. `where` names the file the values
came from so a bad value yields an error message a user can act on.
"""

from __future__ import annotations

import colorsys

import numpy as np

from stseg_viz.errors import PaletteError, VizInputError
from stseg_viz.palettes import IGNORE_COLOR, IGNORE_LABEL, Palette

#: Error colouring: prediction equals truth / differs / truth is ignored.
CORRECT_COLOR = (44, 160, 44)
WRONG_COLOR = (214, 39, 40)
ERROR_IGNORED_COLOR = (190, 190, 190)
#: Points that belong to no instance (id <= 0).
NO_INSTANCE_COLOR = (200, 200, 200)


def ignored_mask(labels: np.ndarray, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """bool [N]: labels that mean "no label" (negative, as SSEN's -1, or equal to `ignore_label`)."""
    labels = np.asarray(labels)
    return (labels < 0) | (labels == ignore_label)


def colorize_labels(
    labels: np.ndarray,
    palette: Palette,
    *,
    ignore_label: int = IGNORE_LABEL,
    where: str = "<labels>",
) -> np.ndarray:
    """uint8 [N, 3] palette colours of int labels [N]; ignored labels get `IGNORE_COLOR`.

    Raises `PaletteError` naming `where` when an id is neither ignored nor inside the palette.
    """
    labels = np.asarray(labels).astype(np.int64, copy=False)
    ignored = ignored_mask(labels, ignore_label)
    outside = ~ignored & (labels >= len(palette))
    if outside.any():
        bad = np.unique(labels[outside])
        hint = "choose another --palette"
        if palette.name == "scannet20" and bad.max() <= 40:
            hint = (
                "NYU40 ids? pass --label-ids nyu40 (or --scene-label-ids nyu40), or --palette nyu40"
            )
        raise PaletteError(
            f"{where}: label ids {_few(bad)} are outside the {palette.name} palette "
            f"(0..{len(palette) - 1}, ignore {ignore_label} or negative); {hint}"
        )
    colors = np.empty((labels.shape[0], 3), dtype=np.uint8)
    colors[~ignored] = palette.colors[labels[~ignored]]
    colors[ignored] = IGNORE_COLOR
    return colors


def instance_color_table(count: int) -> np.ndarray:
    """uint8 [count, 3] well-separated colours: hues stepped by the golden ratio, varied lightness."""
    golden = 0.618033988749895
    table = np.empty((count, 3), dtype=np.uint8)
    for i in range(count):
        hue = (0.13 + i * golden) % 1.0
        lightness = (0.45, 0.6, 0.35)[i % 3]
        saturation = (0.85, 0.65, 0.75)[(i // 3) % 3]
        r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
        table[i] = (round(r * 255), round(g * 255), round(b * 255))
    return table


def colorize_instances(instances: np.ndarray) -> np.ndarray:
    """uint8 [N, 3]: one distinct colour per instance id > 0; ids <= 0 get `NO_INSTANCE_COLOR`.

    Colours depend on the rank of the id among the scene's ids, so neighbouring ids always differ.
    """
    instances = np.asarray(instances).astype(np.int64, copy=False)
    colors = np.empty((instances.shape[0], 3), dtype=np.uint8)
    colors[:] = NO_INSTANCE_COLOR
    valid = instances > 0
    if valid.any():
        ids, rank = np.unique(instances[valid], return_inverse=True)
        colors[valid] = instance_color_table(len(ids))[rank]
    return colors


def colorize_errors(
    pred: np.ndarray,
    truth: np.ndarray,
    *,
    ignore_label: int = IGNORE_LABEL,
    where: str = "<labels>",
) -> np.ndarray:
    """uint8 [N, 3]: `CORRECT_COLOR`, `WRONG_COLOR`, or `ERROR_IGNORED_COLOR` where truth is ignored."""
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise VizInputError(
            f"{where}: prediction has {pred.shape[0]} labels but the ground truth has {truth.shape[0]}"
        )
    colors = np.where((pred == truth)[:, None], CORRECT_COLOR, WRONG_COLOR).astype(np.uint8)
    colors[ignored_mask(truth, ignore_label)] = ERROR_IGNORED_COLOR
    return colors


def colorize_embeddings(embeddings: np.ndarray, *, where: str = "<embeddings>") -> np.ndarray:
    """uint8 [N, 3] colours of float [N, D] embeddings: PCA to 3 dimensions, each scaled to 0..255.

    Each principal axis is stretched between its 1st and 99th percentile so a few outliers do not
    wash the picture out. D < 3 pads with zeros (constant mid-grey channels).
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise VizInputError(
            f"{where}: embeddings must be a non-empty [N, D] array, got {emb.shape}"
        )
    if not np.isfinite(emb).all():
        raise VizInputError(f"{where}: embeddings contain NaN or infinite values")
    centred = emb - emb.mean(axis=0)
    # The right singular vectors of the centred data are the principal axes.
    _, _, vt = np.linalg.svd(centred[:: max(1, len(centred) // 100_000)], full_matrices=False)
    projected = centred @ vt[:3].T
    if projected.shape[1] < 3:
        projected = np.pad(projected, ((0, 0), (0, 3 - projected.shape[1])))
    low = np.percentile(projected, 1, axis=0)
    high = np.percentile(projected, 99, axis=0)
    span = np.where(high - low > 1e-12, high - low, 1.0)
    unit = np.clip((projected - low) / span, 0.0, 1.0)
    unit[:, high - low <= 1e-12] = 0.5
    return np.round(unit * 255).astype(np.uint8)


def rgb_to_uint8(rgb: np.ndarray) -> np.ndarray:
    """uint8 [N, 3] of float colours in [0, 1] (as `PointCloud.rgb`)."""
    return np.round(np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0) * 255).astype(np.uint8)


def _few(values: np.ndarray, limit: int = 6) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f", ... ({len(values)} distinct)" if len(values) > limit else "")
