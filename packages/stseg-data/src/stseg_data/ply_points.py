"""Vertex columns -> `PointCloud`: required fields, colour by declared dtype, integer label fields,
non-finite coordinates (RELIABILITY F6, F8, F9). Shared by every reader (`ply`, `io`).
"""

from __future__ import annotations

import numpy as np

from stseg_data.errors import PointCloudReadError
from stseg_data.pointcloud import PointCloud

Columns = dict[str, np.ndarray]
COLOR_NAMES = (
    ("red", "green", "blue"),
    ("r", "g", "b"),
    ("diffuse_red", "diffuse_green", "diffuse_blue"),
)
LABEL_NAMES = ("label", "l", "class", "semantic")
INSTANCE_NAMES = ("instance", "instance_id", "instance_label")


def vertex_to_pointcloud(vertex: Columns, path: str, *, drop_nonfinite: bool = False) -> PointCloud:
    """Validate vertex columns {name: [N]} and build a `PointCloud` (see `ply.read_ply`).

    xyz float64 [N,3] from x, y, z (required); rgb float32 [N,3] in [0,1]; labels and instances
    int64 [N] (raw ids). Zero points or non-finite coordinates raise `PointCloudReadError`;
    `drop_nonfinite=True` drops those points instead.
    """
    missing = [c for c in "xyz" if c not in vertex]
    if missing:
        raise PointCloudReadError(
            f"{path}: missing vertex fields {missing}; found {list(vertex)}, required ['x', 'y', 'z']"
        )
    xyz = np.stack([vertex[c].astype(np.float64) for c in "xyz"], axis=1)
    if xyz.shape[0] == 0:
        raise PointCloudReadError(f"{path}: 0 points")
    rgb = _colors(vertex, path)
    labels = _integer_field(vertex, LABEL_NAMES, path)
    instances = _integer_field(vertex, INSTANCE_NAMES, path)
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        if not drop_nonfinite:
            raise PointCloudReadError(
                f"{path}: {bad.size} points with non-finite coordinates (NaN/inf), first at "
                f"row {int(bad[0])} (of {xyz.shape[0]}); fix or remove those points"
            )
        if bad.size == xyz.shape[0]:
            raise PointCloudReadError(f"{path}: all {bad.size} points have non-finite coordinates")
    cloud = PointCloud(xyz=xyz, rgb=rgb, labels=labels, instances=instances, path=path)
    return cloud if finite.all() else cloud.subset(np.asarray(finite))


def _colors(vertex: Columns, path: str) -> np.ndarray | None:
    """Colour normalised by its declared type: uchar /255, ushort /65535, float checked in [0,1]."""
    names = next((n for n in COLOR_NAMES if any(c in vertex for c in n)), None)
    if names is None:
        return None
    missing = [c for c in names if c not in vertex]
    if missing:
        raise PointCloudReadError(
            f"{path}: incomplete colour: missing {missing}; found {list(vertex)}"
        )
    dtype = vertex[names[0]].dtype
    if any(vertex[c].dtype != dtype for c in names):
        raise PointCloudReadError(f"{path}: colour channels have different types")
    raw = np.stack([vertex[c] for c in names], axis=1)
    if dtype == np.uint8:
        return (raw / np.float32(255.0)).astype(np.float32)
    if dtype == np.uint16:
        return (raw / np.float32(65535.0)).astype(np.float32)
    if dtype.kind == "f":
        bad = ~(np.isfinite(raw).all(axis=1) & (raw >= 0).all(axis=1) & (raw <= 1).all(axis=1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise PointCloudReadError(
                f"{path}: float colours must be in [0, 1]; row {row} has {raw[row].tolist()} "
                f"({int(bad.sum())} rows bad). Store 0-255 colours as uchar"
            )
        return raw.astype(np.float32)
    raise PointCloudReadError(
        f"{path}: colour type {dtype} not supported (uchar, ushort or float in [0, 1])"
    )


def _integer_field(vertex: Columns, names: tuple[str, ...], path: str) -> np.ndarray | None:
    """The first present field of `names` as int64; a float field must hold whole numbers."""
    name = next((n for n in names if n in vertex), None)
    if name is None:
        return None
    values = vertex[name]
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise PointCloudReadError(
                f"{path}: field '{name}' must hold integers; row {row} has {float(values[row]):g}"
            )
    return values.astype(np.int64)
