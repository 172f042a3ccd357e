"""The PLY header as `plyfile` parses it, in small dataclasses, plus the checks plyfile leaves out.

plyfile parses the header (magic, format line, element and property declarations, known types,
`end_header`); its errors become one-line `PointCloudReadError`s naming the file and the header
line. On top of that we check what plyfile accepts but a reader must not: a header window of
1 MiB (plyfile reads a header byte by byte and would walk a huge garbage file), negative counts
and float list-count types. The data is then checked against these declarations before anything
is allocated (`ply`, `ply_text`; RELIABILITY F1-F3).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import numpy as np
import plyfile

from stseg_data.errors import PointCloudReadError

MAX_HEADER_BYTES = 1 << 20
FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
PLY_TYPE_NAMES = ("char", "uchar", "short", "ushort", "int", "uint", "float", "double",
                  "int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64")  # fmt: skip


@dataclass
class PlyProperty:
    """One property: `dtype` is numpy kind+size ('f4'); `count_dtype` is set for list properties."""

    name: str
    dtype: str
    count_dtype: str | None = None


@dataclass
class PlyElementSpec:
    """An element declaration: name, declared row count, properties in file order."""

    name: str
    count: int
    properties: list[PlyProperty] = field(default_factory=list)

    @property
    def has_lists(self) -> bool:
        return any(p.count_dtype is not None for p in self.properties)

    def row_dtype(self, byte_order: str) -> np.dtype:
        """Structured dtype of one row (elements without list properties only)."""
        return np.dtype([(p.name, byte_order + p.dtype) for p in self.properties])


@dataclass
class PlyHeader:
    """A parsed header. `length` is the byte offset of the first data byte."""

    format: str
    elements: list[PlyElementSpec]
    length: int
    comments: list[str] = field(default_factory=list)

    @property
    def byte_order(self) -> str:
        return FORMATS[self.format]

    def element(self, name: str) -> PlyElementSpec | None:
        return next((e for e in self.elements if e.name == name), None)


def parse_header(head: bytes, path: str) -> PlyHeader:
    """Parse the header at the start of `head` (the file's first bytes) with plyfile."""
    if not head.startswith(b"ply"):
        raise PointCloudReadError(
            f"{path}: not a PLY file (bad magic {head[:8]!r}, expected b'ply')"
        )
    if b"end_header" not in head[:MAX_HEADER_BYTES]:
        raise PointCloudReadError(f"{path}: header has no 'end_header' line (truncated or not PLY)")
    stream = io.BytesIO(head[:MAX_HEADER_BYTES])
    try:
        # plyfile has no public header-only reader; `_parse_header` is what `PlyData.read` calls
        # first (stable since plyfile 0.5). Reading the header alone lets us check the declared
        # sizes before plyfile allocates or maps anything.
        parsed = plyfile.PlyData._parse_header(stream)
    except plyfile.PlyHeaderParseError as error:
        raise PointCloudReadError(_header_message(error, head, path)) from None
    except ValueError as error:  # duplicate names, non-ASCII bytes (UnicodeDecodeError)
        raise PointCloudReadError(f"{path}: bad PLY header ({error})") from None
    if parsed.text:
        fmt = "ascii"
    else:
        fmt = "binary_little_endian" if parsed.byte_order == "<" else "binary_big_endian"
    header = PlyHeader(fmt, [], stream.tell(), [*parsed.comments, *parsed.obj_info])
    for element in parsed.elements:
        header.elements.append(_element(element, path))
        header.comments += element.comments
    return header


def _element(element: plyfile.PlyElement, path: str) -> PlyElementSpec:
    if element.count < 0:
        raise PointCloudReadError(
            f"{path}: header: element '{element.name}' has a negative count {element.count}"
        )
    spec = PlyElementSpec(element.name, element.count)
    for p in element.properties:
        if isinstance(p, plyfile.PlyListProperty):
            if np.dtype(p.len_dtype).kind == "f":
                raise PointCloudReadError(
                    f"{path}: header: list '{p.name}' of element '{element.name}': list count "
                    f"type must be an integer, not {np.dtype(p.len_dtype).name}"
                )
            spec.properties.append(PlyProperty(p.name, p.val_dtype, p.len_dtype))
        else:
            spec.properties.append(PlyProperty(p.name, p.val_dtype))
    return spec


def _header_message(error: plyfile.PlyHeaderParseError, head: bytes, path: str) -> str:
    """plyfile's header error as our one line: file, header line, what was wrong."""
    message = error.message
    if error.line == 1:  # "expected 'ply'" / "unexpected characters after 'ply'"
        return f"{path}: not a PLY file (bad magic {head[:8]!r}, expected b'ply')"
    if message == "early end-of-file":
        return f"{path}: header has no 'end_header' line (truncated or not PLY)"
    unknown = re.match(r"field type '(.*?)' not in", message)
    if unknown:
        message = f"unknown property type {unknown.group(1)!r}; known: {', '.join(PLY_TYPE_NAMES)}"
    return f"{path}: header line {error.line}: {message}"
