"""Atomic PLY writer on `plyfile`: points, colours, scalar fields and triangle faces.

plyfile describes the elements and writes the header; a binary file of points alone is written
by `PlyData.write` itself. plyfile's writer handles list properties and ASCII rows one row at a
time in Python (measured 0.4 s per 100 k faces and 70 s per million ASCII rows), so faces and
ASCII bodies are written by numpy in one call after plyfile's header.
"""

from __future__ import annotations

import os
from typing import IO

import numpy as np
import plyfile

from stseg_data.atomic import atomic_write
from stseg_data.errors import StsegInputError


def write_ply(
    path: str | os.PathLike[str],
    xyz: np.ndarray,
    rgb: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
    binary: bool = True,
    overwrite: bool = True,
    *,
    faces: np.ndarray | None = None,
    color_names: tuple[str, str, str] = ("red", "green", "blue"),
    byte_order: str = "<",
    xyz_dtype: str | np.dtype | None = None,
    comments: tuple[str, ...] = (),
) -> None:
    """Write points atomically as PLY. xyz [N,3] float (kept as float32/float64, or `xyz_dtype`),
    rgb [N,3] float in [0,1] or uint8 (stored as uchar), extra {name: [N]} scalar fields,
    faces int [F,3] (stored as `list uchar int vertex_indices`). Non-finite xyz raise."""
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise StsegInputError(f"write_ply: xyz must have shape [N, 3], got {xyz.shape}")
    if xyz.dtype.kind != "f":
        xyz = xyz.astype(np.float64)
    xyz = xyz.astype(xyz_dtype or (np.float32 if xyz.dtype == np.float32 else np.float64))
    if not np.isfinite(xyz).all():
        raise StsegInputError(f"write_ply: {path}: xyz has non-finite values")
    n = xyz.shape[0]
    columns: list[tuple[str, np.ndarray]] = [(c, xyz[:, i]) for i, c in enumerate("xyz")]
    if rgb is not None:
        rgb8 = _rgb_uint8(rgb, n)
        columns += [(c, rgb8[:, i]) for i, c in enumerate(color_names)]
    for name, values in (extra or {}).items():
        columns.append((name, _as_column(name, values, n)))
    table = np.empty(n, dtype=[(c, v.dtype) for c, v in columns])
    for c, v in columns:
        table[c] = v
    face_table = None if faces is None else _face_table(np.asarray(faces), n)
    try:
        elements = [plyfile.PlyElement.describe(table, "vertex")]
        if face_table is not None:
            elements.append(
                plyfile.PlyElement.describe(face_table, "face", len_types={"vertex_indices": "u1"})
            )
        ply = plyfile.PlyData(
            elements, text=not binary, byte_order=byte_order, comments=list(comments)
        )
    except ValueError as error:  # names with spaces or non-ASCII, newlines in comments
        raise StsegInputError(f"write_ply: {path}: {error}") from None
    with atomic_write(path, "wb", overwrite=overwrite) as handle:
        if binary and face_table is None:
            ply.write(handle)
            return
        handle.write(ply.header.encode("ascii") + b"\n")
        if binary:
            handle.write(
                table.astype(table.dtype.newbyteorder("<" if byte_order == "<" else ">")).tobytes()
            )
            _write_binary_faces(handle, face_table, byte_order)
        else:
            _write_ascii(handle, columns, face_table)


def _face_table(faces: np.ndarray, n: int) -> np.ndarray:
    if (
        faces.ndim != 2
        or faces.shape[1] != 3
        or (faces.size and (faces.min() < 0 or faces.max() >= n))
    ):
        raise StsegInputError("write_ply: faces must be [F, 3] vertex indices in [0, N)")
    table = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,))])
    table["vertex_indices"] = faces
    return table


def _write_binary_faces(handle: IO[bytes], faces: np.ndarray | None, byte_order: str) -> None:
    if faces is None:
        return
    rows = np.empty(len(faces), dtype=[("n", "u1"), ("v", byte_order + "i4", (3,))])
    rows["n"] = 3
    rows["v"] = faces["vertex_indices"]
    handle.write(rows.tobytes())


def _write_ascii(
    handle: IO[bytes], columns: list[tuple[str, np.ndarray]], faces: np.ndarray | None
) -> None:
    formats = [("%.9g" if v.dtype == np.float32 else "%.17g") if v.dtype.kind == "f" else "%d"
               for _, v in columns]  # fmt: skip
    n = len(columns[0][1])
    if n:
        table = np.empty((n, len(columns)), dtype=object)
        for i, (_, v) in enumerate(columns):
            table[:, i] = v
        np.savetxt(handle, table, fmt=formats, delimiter=" ")
    if faces is not None and len(faces):
        rows = np.column_stack([np.full(len(faces), 3), faces["vertex_indices"]])
        np.savetxt(handle, rows, fmt="%d")


def _as_column(name: str, values: np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (n,):
        raise StsegInputError(
            f"write_ply: field '{name}' has shape {values.shape}, expected ({n},)"
        )
    if values.dtype == np.bool_:
        return values.astype(np.uint8)
    if values.dtype.kind in "iu" and values.dtype.itemsize == 8:
        lo, hi = (int(values.min()), int(values.max())) if n else (0, 0)
        if lo < np.iinfo(np.int32).min or hi > np.iinfo(np.int32).max:
            raise StsegInputError(f"write_ply: field '{name}' values [{lo}, {hi}] exceed int32")
        return values.astype(np.int32)
    if values.dtype.kind not in "iuf" or values.dtype.itemsize > 8:
        raise StsegInputError(f"write_ply: field '{name}' has unsupported dtype {values.dtype}")
    return values


def _rgb_uint8(rgb: np.ndarray, n: int) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.shape != (n, 3):
        raise StsegInputError(f"write_ply: rgb has shape {rgb.shape}, expected ({n}, 3)")
    if rgb.dtype == np.uint8:
        return rgb
    if rgb.dtype.kind == "f":
        if n and not (np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1):
            raise StsegInputError("write_ply: float rgb must be finite and in [0, 1]")
        return np.round(rgb * 255.0).astype(np.uint8)
    if n and (rgb.min() < 0 or rgb.max() > 255):
        raise StsegInputError("write_ply: integer rgb must be in [0, 255]")
    return rgb.astype(np.uint8)
