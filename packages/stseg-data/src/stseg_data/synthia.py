"""Synthia4D: per-frame PLY (x y z in centimetres, r g b, raw label 0..15) grouped in sequences,
read as temporal windows of consecutive frames (the 4D input of the original work)."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stseg_data.errors import DatasetFormatError, StsegInputError
from stseg_data.labels import synthia16_to_12
from stseg_data.ply import read_ply
from stseg_data.pointcloud import PointCloud
from stseg_data.splits import read_split


@dataclass
class FrameWindow:
    """Consecutive frames stacked: xyzt float64 [N, 4] (t = 0..T-1), rgb [N, 3], labels [N]."""

    xyzt: np.ndarray
    rgb: np.ndarray | None
    labels: np.ndarray | None
    paths: list[str]


def read_synthia_frame(path: str | os.PathLike[str], *, raw_labels: bool = True) -> PointCloud:
    """One frame; `raw_labels=True` maps raw 0..15 ids to the 12 training classes (255 ignore)."""
    cloud = read_ply(path)
    if cloud.labels is not None and raw_labels:
        cloud.labels = synthia16_to_12(cloud.labels)
    return cloud


def group_sequences(paths: list[Path], root: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """{sequence name (first path component under root): sorted frame paths}."""
    sequences: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        sequences[Path(path).relative_to(root).parts[0]].append(Path(path))
    return {name: sorted(frames) for name, frames in sorted(sequences.items())}


def temporal_windows(frames: list, length: int = 3, dilation: int = 1) -> list[list]:
    """Every window of `length` frames spaced `dilation` apart (frame i, i+d, ..., i+(L-1)d)."""
    if length < 1 or dilation < 1:
        raise StsegInputError("temporal window length and dilation must be >= 1")
    span = (length - 1) * dilation
    return [[frames[i + k * dilation] for k in range(length)] for i in range(len(frames) - span)]


def read_window(paths: list, *, raw_labels: bool = True) -> FrameWindow:
    """Read and stack frames; the time coordinate is the position in the window."""
    if not paths:
        raise StsegInputError("empty temporal window")
    clouds = [read_synthia_frame(p, raw_labels=raw_labels) for p in paths]
    xyzt = np.concatenate(
        [
            np.column_stack([c.xyz, np.full(len(c), t, dtype=np.float64)])
            for t, c in enumerate(clouds)
        ]
    )
    has_rgb = [c.rgb is not None for c in clouds]
    has_labels = [c.labels is not None for c in clouds]
    if len(set(has_rgb)) > 1 or len(set(has_labels)) > 1:
        raise DatasetFormatError(f"frames {paths[0]}..{paths[-1]} disagree on their fields")
    rgb = np.concatenate([c.rgb for c in clouds]) if has_rgb[0] else None
    labels = np.concatenate([c.labels for c in clouds]) if has_labels[0] else None
    return FrameWindow(xyzt, rgb, labels, [str(p) for p in paths])


def split_windows(root: str | os.PathLike[str], list_file: str | os.PathLike[str], length: int = 3,
                  dilation: int = 1) -> list[list[Path]]:  # fmt: skip
    """All temporal windows of the sequences listed (frame paths) in a split file."""
    sequences = group_sequences(read_split(list_file, root), root)
    return [w for frames in sequences.values() for w in temporal_windows(frames, length, dilation)]
