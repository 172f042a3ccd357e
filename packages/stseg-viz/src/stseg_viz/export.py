"""Coloured PLY export: a scene with its points recoloured by rgb, label, instance or error."""

from __future__ import annotations

import os

import numpy as np

from stseg_data.ply import write_ply
from stseg_data.pointcloud import PointCloud
from stseg_viz.coloring import Coloring
from stseg_viz.inputs import load_colored_scene
from stseg_viz.outliers import bulk_of
from stseg_viz.palettes import IGNORE_LABEL

OUTLIERS_KEPT = "they are kept in the PLY; a viewer framing all points will show a dot"


def export_colored_ply(
    scene: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    color_by: str = "rgb",
    labels: str | os.PathLike[str] | None = None,
    embeddings: str | os.PathLike[str] | None = None,
    palette: str = "scannet20",
    label_ids: str = "train",
    scene_label_ids: str = "train",
    ignore_label: int = IGNORE_LABEL,
) -> Coloring:
    """Write `out` (binary PLY: x, y, z, uchar red/green/blue, plus label/instance fields kept).

    `labels` is an optional per-point file (.txt, .npy, or .ply with a `label` field). Returns the
    colouring used (colours and legend). The write is atomic. Far outliers
    (`outliers.find_outliers`) are kept, with a warning: viewers that frame on all points would
    show the scene as a dot.
    """
    cloud, values, coloring = load_colored_scene(
        scene,
        color_by,
        labels=labels,
        embeddings=embeddings,
        palette=palette,
        label_ids=label_ids,
        scene_label_ids=scene_label_ids,
        ignore_label=ignore_label,
    )
    bulk_of(cloud.xyz, str(scene), OUTLIERS_KEPT)
    write_colored_ply(out, cloud, coloring.colors, labels=values)
    return coloring


def write_colored_ply(
    out: str | os.PathLike[str],
    cloud: PointCloud,
    colors: np.ndarray,
    *,
    labels: np.ndarray | None = None,
) -> None:
    """Write `cloud.xyz` with uint8 [N, 3] `colors`; the scene's label/instance fields are kept.

    A separate `labels` array (a prediction) is stored as the vertex field `pred`.
    """
    extra: dict[str, np.ndarray] = {}
    if cloud.labels is not None:
        extra["label"] = cloud.labels.astype(np.int32)
    if cloud.instances is not None:
        extra["instance"] = cloud.instances.astype(np.int32)
    if labels is not None:
        extra["pred"] = np.asarray(labels).astype(np.int32)
    _write_ply(out, cloud.xyz, colors, extra)


def _write_ply(
    out: str | os.PathLike[str], xyz: np.ndarray, colors: np.ndarray, extra: dict[str, np.ndarray]
) -> None:
    write_ply(out, xyz, rgb=colors, extra=extra, binary=True, overwrite=True)
