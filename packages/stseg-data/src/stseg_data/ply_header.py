"""PLY header parsing (all three formats), kept separate from the data parsing in `ply`.

The header is validated completely before any data is touched: magic, format line, element and
property declarations, known types, and the `end_header` line. Declared counts are later checked
against the bytes actually present, before anything is allocated (RELIABILITY F1-F3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stseg_data.errors import PointCloudReadError

# PLY type names (both spellings) -> numpy kind+size, without byte order.
PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
# numpy kind+size -> canonical PLY name used when writing.
PLY_NAMES: dict[str, str] = {
    "i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort",
    "i4": "int", "u4": "uint", "f4": "float", "f8": "double",
}  # fmt: skip
FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
MAX_HEADER_BYTES = 1 << 20


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
        """Structured dtype of one row (fixed-size elements only)."""
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


def parse_header(data: bytes, path: str) -> PlyHeader:
    """Parse the header at the start of `data`; raise `PointCloudReadError` naming `path`."""
    if not data.startswith(b"ply"):
        raise PointCloudReadError(
            f"{path}: not a PLY file (bad magic {data[:8]!r}, expected b'ply')"
        )
    marker = data.find(b"end_header", 0, MAX_HEADER_BYTES)
    if marker < 0:
        raise PointCloudReadError(f"{path}: header has no 'end_header' line (truncated or not PLY)")
    end = data.find(b"\n", marker)
    if end < 0:
        end = len(data) - 1  # 'end_header' as the very last bytes: a file with no data
    try:
        text = data[:marker].decode("ascii")
    except UnicodeDecodeError as error:
        raise PointCloudReadError(f"{path}: header is not ASCII text ({error})") from None
    lines = text.replace("\r", "").split("\n")
    header = PlyHeader(format="", elements=[], length=end + 1)
    for lineno, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words:
            continue
        _header_line(header, words, lineno, path)
    if not header.format:
        raise PointCloudReadError(f"{path}: header has no 'format' line")
    return header


def _header_line(header: PlyHeader, words: list[str], lineno: int, path: str) -> None:
    where = f"{path}: header line {lineno}"
    keyword = words[0]
    if keyword in ("comment", "obj_info"):
        header.comments.append(" ".join(words[1:]))
    elif keyword == "format":
        if len(words) != 3 or words[1] not in FORMATS:
            raise PointCloudReadError(
                f"{where}: bad format line {' '.join(words)!r}; expected one of {sorted(FORMATS)}"
            )
        header.format = words[1]
    elif keyword == "element":
        if len(words) != 3 or not words[2].isdigit():
            raise PointCloudReadError(f"{where}: bad element line {' '.join(words)!r}")
        header.elements.append(PlyElementSpec(words[1], int(words[2])))
    elif keyword == "property":
        if not header.elements:
            raise PointCloudReadError(f"{where}: property before any element")
        header.elements[-1].properties.append(_property(words, where))
    else:
        raise PointCloudReadError(f"{where}: unknown header keyword {keyword!r}")


def _property(words: list[str], where: str) -> PlyProperty:
    if len(words) == 5 and words[1] == "list":
        count_type, item_type, name = words[2], words[3], words[4]
        for t in (count_type, item_type):
            if t not in PLY_TYPES:
                raise PointCloudReadError(f"{where}: unknown property type {t!r}")
        if PLY_TYPES[count_type][0] == "f":
            raise PointCloudReadError(
                f"{where}: list count type must be an integer, not {count_type}"
            )
        return PlyProperty(name, PLY_TYPES[item_type], PLY_TYPES[count_type])
    if len(words) == 3:
        if words[1] not in PLY_TYPES:
            raise PointCloudReadError(
                f"{where}: unknown property type {words[1]!r}; known: {sorted(set(PLY_TYPES))}"
            )
        return PlyProperty(words[2], PLY_TYPES[words[1]])
    raise PointCloudReadError(f"{where}: bad property line {' '.join(words)!r}")


def format_header(
    fmt: str, elements: list[PlyElementSpec], comments: tuple[str, ...] = ()
) -> bytes:
    """The header bytes for writing (inverse of `parse_header`)."""
    lines = ["ply", f"format {fmt} 1.0"]
    lines += [f"comment {c}" for c in comments]
    for element in elements:
        lines.append(f"element {element.name} {element.count}")
        for p in element.properties:
            if p.count_dtype is None:
                lines.append(f"property {PLY_NAMES[p.dtype]} {p.name}")
            else:
                lines.append(
                    f"property list {PLY_NAMES[p.count_dtype]} {PLY_NAMES[p.dtype]} {p.name}"
                )
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")
