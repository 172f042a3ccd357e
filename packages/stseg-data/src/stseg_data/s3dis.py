"""Stanford S3DIS: `Area_N/<room>/Annotations/<class>_<k>.txt` files of `x y z r g b` lines.

A room is the union of its annotation files; the class comes from the file name (13 classes,
stairs -> ignore) and each file is one instance.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from stseg_data.errors import DatasetFormatError, PointCloudReadError
from stseg_data.labels import s3dis_name_to_id
from stseg_data.pointcloud import PointCloud
from stseg_data.textparse import read_numeric_lines

ANNOTATION_NAME = re.compile(r"^([A-Za-z]+)_(\d+)\.txt$")


def read_s3dis_txt(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """One `x y z r g b` file -> (xyz float64 [N,3], rgb uint8 [N,3]); colours must be 0..255."""
    table = read_numeric_lines(path, 6)
    if table.shape[0] == 0:
        raise PointCloudReadError(f"{path}: 0 points")
    rgb = table[:, 3:]
    bad = (rgb < 0) | (rgb > 255) | (rgb != np.round(rgb))
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise PointCloudReadError(
            f"{path}: point {row} (line ~{row + 1}): colour {rgb[row].tolist()} is not 0..255 integers"
        )
    return table[:, :3], rgb.astype(np.uint8)


def list_rooms(root: str | os.PathLike[str]) -> list[Path]:
    """All `Area_*/<room>` folders that have an `Annotations` folder, sorted."""
    root = Path(root)
    rooms = sorted(p.parent for p in root.glob("Area_*/*/Annotations") if p.is_dir())
    if not rooms:
        raise DatasetFormatError(f"{root}: no S3DIS rooms (expected Area_N/<room>/Annotations/)")
    return rooms


def read_s3dis_room(room: str | os.PathLike[str]) -> PointCloud:
    """Read a room folder: labels are 13-class training ids (stairs 255), instances 1..K."""
    room = Path(room)
    files = sorted((room / "Annotations").glob("*.txt"))
    if not files:
        raise DatasetFormatError(f"{room}: no annotation files in {room / 'Annotations'}")
    parts_xyz, parts_rgb, parts_label, parts_inst = [], [], [], []
    for k, file in enumerate(files, start=1):
        match = ANNOTATION_NAME.match(file.name)
        if match is None:
            raise DatasetFormatError(f"{file}: annotation file name must be <class>_<k>.txt")
        try:
            label = s3dis_name_to_id(match.group(1))
        except DatasetFormatError:
            raise
        except ValueError as error:
            raise DatasetFormatError(f"{file}: {error}") from None
        xyz, rgb = read_s3dis_txt(file)
        parts_xyz.append(xyz)
        parts_rgb.append(rgb)
        parts_label.append(np.full(len(xyz), label, dtype=np.int64))
        parts_inst.append(np.full(len(xyz), k, dtype=np.int64))
    xyz = np.concatenate(parts_xyz)
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():
        raise PointCloudReadError(
            f"{room}: {int((~finite).sum())} non-finite coordinates, first at point {int(np.flatnonzero(~finite)[0])}"
        )
    return PointCloud(
        xyz=xyz,
        rgb=np.concatenate(parts_rgb).astype(np.float32) / 255.0,
        labels=np.concatenate(parts_label),
        instances=np.concatenate(parts_inst),
        path=str(room),
    )
