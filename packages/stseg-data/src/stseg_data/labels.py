"""Label maps of ScanNet v2 (NYU40 -> 20), S3DIS (14 -> 13) and Synthia4D (16 -> 12).

Training ids are 0..C-1 in the order of the class-name tuples; every raw id outside a map becomes
`IGNORE_LABEL` (255). Mapping functions are pure and vectorised (a lookup table, not a loop).
"""

from __future__ import annotations

import numpy as np

from stseg_data.errors import StsegInputError

IGNORE_LABEL = 255

# ScanNet v2 benchmark: 20 classes given by their NYU40 ids.
SCANNET_NYU40_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39,
)  # fmt: skip
SCANNET_CLASS_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
    "bathtub", "otherfurniture",
)  # fmt: skip
# Instance classes (SSEN / ScanNet instance benchmark): every class except wall and floor.
SCANNET_INSTANCE_CLASS_IDS: tuple[int, ...] = tuple(range(2, 20))  # training ids
SCANNET_INSTANCE_NYU40_IDS: tuple[int, ...] = SCANNET_NYU40_IDS[2:]

# The 40 NYU classes (id = position + 1), as in the ScanNet label TSV `nyu40class` column.
NYU40_CLASS_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)  # fmt: skip

# Stanford S3DIS: 13 classes; the 14th raw class, stairs, is ignored.
S3DIS_CLASS_NAMES: tuple[str, ...] = (
    "ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa",
    "bookcase", "board", "clutter",
)  # fmt: skip
S3DIS_RAW_CLASS_NAMES: tuple[str, ...] = (*S3DIS_CLASS_NAMES, "stairs")

# Synthia4D: 16 raw ids (0..15); void 0, sky 1 and reserved 13, 14 are ignored -> 12 classes.
SYNTHIA_RAW_IDS: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15)
SYNTHIA_CLASS_NAMES: tuple[str, ...] = (
    "building", "road", "sidewalk", "fence", "vegetation", "pole", "car", "traffic sign",
    "pedestrian", "bicycle", "lanemarking", "traffic light",
)  # fmt: skip


def _lookup_map(raw_ids: tuple[int, ...], size: int) -> np.ndarray:
    table = np.full(size, IGNORE_LABEL, dtype=np.int64)
    table[list(raw_ids)] = np.arange(len(raw_ids))
    return table


def _apply(table: np.ndarray, labels: np.ndarray, what: str, strict: bool) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise StsegInputError(f"{what} labels must be integers")
        labels = labels.astype(np.int64)
    labels = labels.astype(np.int64, copy=False)
    inside = (labels >= 0) & (labels < table.size)
    if strict and not np.all(inside):
        bad = np.unique(labels[~inside])
        raise StsegInputError(f"{what} label ids outside the map: {bad[:10].tolist()}")
    out = np.full(labels.shape, IGNORE_LABEL, dtype=np.int64)
    out[inside] = table[labels[inside]]
    return out


_NYU40_TO_20 = _lookup_map(SCANNET_NYU40_IDS, 41)
_SYNTHIA_TO_12 = _lookup_map(SYNTHIA_RAW_IDS, 16)


def nyu40_to_scannet20(labels: np.ndarray, *, strict: bool = False) -> np.ndarray:
    """NYU40 ids [N] -> ScanNet 20-class training ids [N] (int64); others -> 255.

    Ids above 40 (ScanNet's known 50/149 bugs) become ignore; `strict=True` raises instead.
    Id 0 (unannotated) is always ignore.
    """
    return _apply(_NYU40_TO_20, labels, "NYU40", strict)


def scannet20_to_nyu40(labels: np.ndarray) -> np.ndarray:
    """ScanNet training ids [N] -> NYU40 ids [N]; ignore (and anything outside 0..19) -> 0."""
    table = np.asarray(SCANNET_NYU40_IDS, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    inside = (labels >= 0) & (labels < table.size)
    out = np.zeros(labels.shape, dtype=np.int64)
    out[inside] = table[labels[inside]]
    return out


def synthia16_to_12(labels: np.ndarray, *, strict: bool = False) -> np.ndarray:
    """Synthia raw ids 0..15 [N] -> 12-class training ids [N]; void/sky/reserved -> 255."""
    return _apply(_SYNTHIA_TO_12, labels, "Synthia", strict)


def s3dis_name_to_id(name: str) -> int:
    """S3DIS annotation class name ('chair', 'stairs', ...) -> training id (stairs -> 255).

    Unknown names raise `StsegInputError` listing the known ones.
    """
    if name in S3DIS_CLASS_NAMES:
        return S3DIS_CLASS_NAMES.index(name)
    if name == "stairs":
        return IGNORE_LABEL
    raise StsegInputError(
        f"unknown S3DIS class {name!r}; known: {', '.join(S3DIS_RAW_CLASS_NAMES)}"
    )


def check_label_range(labels: np.ndarray, num_classes: int, what: str = "labels") -> None:
    """Raise `StsegInputError` unless every label is in [0, num_classes) or equals 255 (F14)."""
    labels = np.asarray(labels)
    bad = ~(((labels >= 0) & (labels < num_classes)) | (labels == IGNORE_LABEL))
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise StsegInputError(
            f"{what}: {int(bad.sum())} labels outside [0, {num_classes}) and not {IGNORE_LABEL}; "
            f"first at index {first} = {int(labels[first])}"
        )
