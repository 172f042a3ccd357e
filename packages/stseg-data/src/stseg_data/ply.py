"""PLY through `plyfile`: a validating reader (ascii, binary little/big endian) and an atomic writer.

`read_ply_elements` returns every element's columns; `read_ply` turns the vertex element into a
`PointCloud` (coordinates, colours normalised by their declared type, label, instance). plyfile
parses every header and reads binary data memory-mapped; ASCII rows go through numpy.loadtxt
(`ply_text`). Around plyfile we keep the checks it does not make: declared sizes against the file
size before anything is allocated or mapped, trailing bytes, list lengths. Every problem
(truncation, trailing bytes, absurd counts, bad tokens, out-of-range values, missing fields,
non-finite coordinates) is one `PointCloudReadError` naming the file and the row or line
(RELIABILITY F1-F9); no plyfile or numpy exception escapes.

The memory map lives only inside `read_ply_elements`: every returned column is a copy, so no file
stays open or mapped after a read.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np
import plyfile

from stseg_data.errors import PointCloudReadError
from stseg_data.ply_meta import (
    MAX_HEADER_BYTES,
    PlyElementSpec,
    PlyHeader,
    PlyProperty,
    parse_header,
)
from stseg_data.ply_points import (
    COLOR_NAMES,
    INSTANCE_NAMES,
    LABEL_NAMES,
    vertex_to_pointcloud,
)
from stseg_data.ply_text import read_ascii
from stseg_data.ply_write import write_ply
from stseg_data.pointcloud import PointCloud

__all__ = [
    "COLOR_NAMES",
    "INSTANCE_NAMES",
    "LABEL_NAMES",
    "PlyElementSpec",
    "PlyHeader",
    "PlyProperty",
    "read_ply",
    "read_ply_elements",
    "vertex_to_pointcloud",
    "write_ply",
]

Columns = dict[str, np.ndarray]


def read_ply_elements(path: str | os.PathLike[str]) -> tuple[PlyHeader, dict[str, Columns]]:
    """Parse a whole PLY file. Returns (header, {element: {property: array}}).

    Scalar properties are 1-D arrays of their declared dtype (native byte order); a list property
    is an [rows, k] array when every row has the same length k (triangle faces), else (ASCII
    only) an object array of rows.
    """
    path = str(path)
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            head = stream.read(1 << 16)  # headers are short; look further only if needed
            if b"end_header" not in head:
                head += stream.read(MAX_HEADER_BYTES - len(head))
            header = parse_header(head, path)
            if header.format == "ascii":
                return header, read_ascii(stream, header, size, path)
            return header, _read_binary(stream, header, size, path)
    except OSError as error:
        raise PointCloudReadError(f"{path}: cannot read ({error.strerror or error})") from None


def _read_binary(stream: BinaryIO, header: PlyHeader, size: int, path: str) -> dict[str, Columns]:
    """Check every element's size against the file, then let plyfile memory-map them all."""
    order = header.byte_order
    offset = header.length
    known_list_len: dict[str, dict[str, int]] = {}
    layout: dict[str, tuple[int, int, dict[str, int]]] = {}  # element: (offset, row bytes, lists)
    for element in header.elements:
        if element.has_lists:
            lengths, row_bytes = _probe_lists(stream, offset, element, order, size, path)
            known_list_len[element.name] = lengths
        else:
            row_bytes = element.row_dtype(order).itemsize
        layout[element.name] = (offset, row_bytes, known_list_len.get(element.name, {}))
        need = element.count * row_bytes  # python int: no overflow for huge counts (F3)
        remaining = size - offset
        if need > remaining:
            raise PointCloudReadError(
                f"{path}: truncated: element '{element.name}' declares {element.count} rows of "
                f"{row_bytes} bytes ({need} bytes) but only {remaining} bytes remain "
                f"(file size {size}); data ends in row {remaining // max(row_bytes, 1)}"
            )
        offset += need
    if offset != size:  # plyfile does not look past the last element (F2)
        raise PointCloudReadError(
            f"{path}: {size - offset} unexpected bytes after the last element "
            f"(header counts {', '.join(f'{e.name}={e.count}' for e in header.elements)} "
            f"end at byte {offset}, file size {size}): count smaller than the data?"
        )
    stream.seek(0)
    try:
        # known_list_len lets plyfile map list elements too (one fixed-size record per row).
        data = plyfile.PlyData.read(stream, mmap="c", known_list_len=known_list_len)
    except plyfile.PlyElementParseError as error:
        raise PointCloudReadError(
            _list_length_message(error, header, layout, stream, path)
        ) from None
    except (plyfile.PlyParseError, ValueError) as error:  # not expected after the checks above
        raise PointCloudReadError(f"{path}: {error}") from None
    out: dict[str, Columns] = {}
    for element in header.elements:
        table = data[element.name].data
        # copies in native byte order: nothing returned points into the memory map
        out[element.name] = {
            p.name: np.array(table[p.name], dtype=np.dtype(p.dtype)) for p in element.properties
        }
    return out


def _probe_lists(
    stream: BinaryIO, offset: int, element: PlyElementSpec, order: str, size: int, path: str
) -> tuple[dict[str, int], int]:
    """List lengths of the element's first row and the row size they imply (binary lists must
    keep one length per property; plyfile checks every row against it)."""
    lengths: dict[str, int] = {}
    probe = offset
    for p in element.properties:
        if p.count_dtype is None:
            probe += np.dtype(p.dtype).itemsize
            continue
        width = np.dtype(p.count_dtype).itemsize
        k = 0
        if element.count:
            if probe + width > size:
                raise PointCloudReadError(f"{path}: truncated in the first row of '{element.name}'")
            stream.seek(probe)
            k = int(np.frombuffer(stream.read(width), dtype=order + p.count_dtype)[0])
        if k < 0:
            raise PointCloudReadError(
                f"{path}: element '{element.name}' row 0: list '{p.name}' has length {k}"
            )
        lengths[p.name] = k
        probe += width + k * np.dtype(p.dtype).itemsize
    return lengths, probe - offset


def _list_length_message(
    error: plyfile.PlyElementParseError,
    header: PlyHeader,
    layout: dict[str, tuple[int, int, dict[str, int]]],
    stream: BinaryIO,
    path: str,
) -> str:
    """plyfile's 'unexpected list length' as our line: the length found and the one expected."""
    element = header.element(error.element.name) if error.element else None
    if element is None or error.row is None or error.prop is None:
        return f"{path}: {error}"
    offset, row_bytes, lengths = layout[element.name]
    at = offset + error.row * row_bytes  # the failing row; walk to its count field
    for p in element.properties:
        if p.name == error.prop.name:
            count_dtype = np.dtype(header.byte_order + str(p.count_dtype))
            stream.seek(at)
            found = int(np.frombuffer(stream.read(count_dtype.itemsize), count_dtype)[0])
            return (
                f"{path}: element '{element.name}' row {error.row}: list '{p.name}' has {found} "
                f"items, expected {lengths[p.name]} like row 0 "
                "(only constant-length lists are supported in binary files)"
            )
        at += np.dtype(p.dtype).itemsize * (1 if p.count_dtype is None else lengths[p.name])
        at += 0 if p.count_dtype is None else np.dtype(p.count_dtype).itemsize
    return f"{path}: {error}"


def read_ply(path: str | os.PathLike[str], *, drop_nonfinite: bool = False) -> PointCloud:
    """Read the vertex element of a PLY file as a `PointCloud`.

    xyz float64 [N,3] (required: x, y, z); rgb float32 [N,3] in [0,1] from red/green/blue or
    r/g/b (uchar /255, ushort /65535, float must already be in [0,1]); labels from
    label/l/class/semantic and instances from instance/instance_id (raw ids, not remapped).
    Zero points or non-finite coordinates raise; `drop_nonfinite=True` drops those points instead.
    """
    path = str(path)
    _, elements = read_ply_elements(path)
    if "vertex" not in elements:
        raise PointCloudReadError(f"{path}: no 'vertex' element; found {sorted(elements)}")
    return vertex_to_pointcloud(elements["vertex"], path, drop_nonfinite=drop_nonfinite)
