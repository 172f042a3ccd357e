"""Reading what stseg-viz draws: scenes (through stseg-data's readers) and per-point label files.

Every check names the offending file, because these errors reach users through the CLI as one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stseg_data.errors import StsegInputError
from stseg_data.io import read_scene
from stseg_data.labels import nyu40_to_scannet20
from stseg_data.ply import read_ply_elements
from stseg_data.pointcloud import PointCloud
from stseg_viz.coloring import Coloring, scene_colors
from stseg_viz.errors import LabelFileError, VizInputError
from stseg_viz.palettes import IGNORE_LABEL, get_palette

#: Id spaces of `--label-ids` / `--scene-label-ids`.
LABEL_ID_SPACES = ("train", "nyu40")
#: Vertex properties accepted as "the labels" of a PLY labels file, in order of preference.
PLY_LABEL_FIELDS = ("label", "labels", "pred", "prediction", "semantic", "class")


def load_scene(path: str | os.PathLike[str]) -> PointCloud:
    """Read any scene file stseg-data supports and check it can be drawn (non-empty, finite xyz)."""
    path = Path(path)
    if not path.is_file():
        raise VizInputError(f"{path}: no such file")
    cloud = read_scene(path)
    return check_cloud(cloud, str(path))


def load_inputs(
    scene: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None = None,
    embeddings: str | os.PathLike[str] | None = None,
    *,
    label_ids: str = "train",
    scene_label_ids: str = "train",
    palette: str = "scannet20",
) -> tuple[PointCloud, np.ndarray | None, np.ndarray | None]:
    """(cloud, labels [N] or None, embeddings [N, D] or None), all checked against the scene.

    `label_ids` / `scene_label_ids` say which ids the labels file / the scene's own labels hold:
    "train" (the palette's ids, used as they are) or "nyu40" (raw NYU40 ids, as ScanNet files and
    `stseg-models predict` with a ScanNet checkpoint write them), converted to the ScanNet 20-class
    ids; NYU40 classes outside the benchmark become ignored.
    """
    cloud = load_scene(scene)
    n = len(cloud)
    values = None if labels is None else load_labels(labels, n, scene=str(scene))
    emb = None if embeddings is None else load_embeddings(embeddings, n, scene=str(scene))
    values = to_palette_ids(values, label_ids, palette, "--label-ids")
    if cloud.labels is not None and scene_label_ids != "train":
        converted = to_palette_ids(cloud.labels, scene_label_ids, palette, "--scene-label-ids")
        cloud = PointCloud(cloud.xyz, cloud.rgb, converted, cloud.instances, cloud.path)
    return cloud, values, emb


def load_colored_scene(
    scene: str | os.PathLike[str],
    color_by: str,
    *,
    labels: str | os.PathLike[str] | None = None,
    embeddings: str | os.PathLike[str] | None = None,
    palette: str = "scannet20",
    label_ids: str = "train",
    scene_label_ids: str = "train",
    ignore_label: int = IGNORE_LABEL,
) -> tuple[PointCloud, np.ndarray | None, Coloring]:
    """`load_inputs` then `scene_colors`: (cloud, labels [N] or None, colouring by `color_by`)."""
    cloud, values, emb = load_inputs(
        scene,
        labels,
        embeddings,
        label_ids=label_ids,
        scene_label_ids=scene_label_ids,
        palette=palette,
    )
    coloring = scene_colors(
        cloud,
        color_by,
        labels=values,
        palette=get_palette(palette),
        ignore_label=ignore_label,
        labels_source=str(labels),
        embeddings=emb,
    )
    return cloud, values, coloring


def to_palette_ids(
    values: np.ndarray | None, ids: str, palette: str, option: str = "--label-ids"
) -> np.ndarray | None:
    """`values` in the palette's id space; see `load_inputs`."""
    if values is None or ids == "train":
        return values
    if ids != "nyu40":
        raise VizInputError(f"{option} must be one of {', '.join(LABEL_ID_SPACES)}, not {ids!r}")
    if palette != "scannet20":
        raise VizInputError(
            f"{option} nyu40 converts to the ScanNet 20 classes: use it with --palette scannet20 "
            "(or draw raw NYU40 ids with --palette nyu40)"
        )
    return nyu40_to_scannet20(values)


def check_cloud(cloud: PointCloud, where: str) -> PointCloud:
    """`cloud` unchanged if it has at least one point and only finite coordinates; else an error."""
    if len(cloud) == 0:
        raise VizInputError(f"{where}: the point cloud is empty (0 points); nothing to draw")
    finite = np.isfinite(cloud.xyz).all(axis=1)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise VizInputError(
            f"{where}: {int((~finite).sum())} points have NaN or infinite coordinates "
            f"(first at index {first}); clean the file before drawing it"
        )
    return cloud


def load_labels(
    path: str | os.PathLike[str], n_points: int, *, scene: str = "the scene"
) -> np.ndarray:
    """int64 [n_points] labels from a .txt (one id per line), .npy, or .ply (`label` vertex field).

    Raises `LabelFileError` naming `path` when the file is unreadable, holds non-integers, or its
    length differs from `n_points` (the point count of `scene`).
    """
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: no such labels file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        labels = _load_npy(path)
    elif suffix == ".ply":
        labels = _load_ply_labels(path)
    else:
        labels = _load_txt(path)
    if labels.shape[0] != n_points:
        raise LabelFileError(
            f"{path}: has {labels.shape[0]} labels but {scene} has {n_points} points; "
            "labels must be given per point, in the scene's order"
        )
    return labels


def load_embeddings(
    path: str | os.PathLike[str], n_points: int, *, scene: str = "the scene"
) -> np.ndarray:
    """float64 [n_points, D] per-point embeddings from a .npy file (e.g. SSEN's instance embeddings)."""
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: no such embeddings file")
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise LabelFileError(f"{path}: not a readable .npy array ({error})") from error
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.number):
        raise LabelFileError(
            f"{path}: embeddings must be a numeric [N, D] array, got {values.shape}"
        )
    if values.shape[0] != n_points:
        raise LabelFileError(
            f"{path}: has {values.shape[0]} embeddings but {scene} has {n_points} points"
        )
    if not np.isfinite(values).all():
        raise LabelFileError(f"{path}: embeddings contain NaN or infinite values")
    return values.astype(np.float64)


def _load_txt(path: Path) -> np.ndarray:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise LabelFileError(f"{path}: cannot read labels ({error})") from error
    tokens = text.split()
    try:
        values = np.array([int(token) for token in tokens], dtype=np.int64)
    except ValueError as error:
        raise LabelFileError(f"{path}: labels must be integers, one per line ({error})") from error
    return values


def _load_npy(path: Path) -> np.ndarray:
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise LabelFileError(f"{path}: not a readable .npy array ({error})") from error
    values = np.squeeze(values)
    if values.ndim != 1:
        raise LabelFileError(f"{path}: labels must be a 1-D array, got shape {values.shape}")
    is_int = np.issubdtype(values.dtype, np.integer)
    whole_floats = np.issubdtype(values.dtype, np.floating) and np.all(values == np.round(values))
    if not is_int and not whole_floats:
        raise LabelFileError(f"{path}: labels must be integers, got dtype {values.dtype}")
    return values.astype(np.int64)


def _load_ply_labels(path: Path) -> np.ndarray:
    try:
        _, elements = read_ply_elements(path)
    except StsegInputError as error:
        raise LabelFileError(f"{path}: not a readable PLY labels file ({error})") from error
    vertex = elements.get("vertex", {})
    field = next((name for name in PLY_LABEL_FIELDS if name in vertex), None)
    if field is None:
        raise LabelFileError(
            f"{path}: no label field in the PLY vertices (looked for {', '.join(PLY_LABEL_FIELDS)}; "
            f"found {', '.join(vertex) or 'none'})"
        )
    values = np.asarray(vertex[field])
    if not np.issubdtype(values.dtype, np.integer):
        raise LabelFileError(
            f"{path}: PLY field {field!r} must be an integer type, got {values.dtype}"
        )
    return values.astype(np.int64)
