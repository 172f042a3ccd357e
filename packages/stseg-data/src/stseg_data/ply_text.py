"""ASCII PLY bodies: `numpy.loadtxt` reads each element's rows; every error names the line.

plyfile parses the header (`ply_meta`). Its own ASCII reader converts one value at a time in
Python (measured ~20 s per million 7-value rows, numpy.loadtxt's C parser ~3.5 s; see
benchmarks/bench_ply.py), so the rows of each element go through numpy.loadtxt as float64, then
each property is range-checked and cast to its declared type. plyfile's reader stays the path for
what loadtxt cannot take: list properties whose length varies between rows.

Blank lines are skipped (as loadtxt does). Line numbers are looked up only once something failed,
by reading the file again (RELIABILITY F2, F4, F5).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO, NoReturn

import numpy as np
import plyfile

from stseg_data.errors import PointCloudReadError
from stseg_data.ply_meta import PlyElementSpec, PlyHeader

Columns = dict[str, np.ndarray]


class _VariableLists(Exception):
    """A list property changes length between rows: hand the file to plyfile's reader."""


def read_ascii(stream: BinaryIO, header: PlyHeader, size: int, path: str) -> dict[str, Columns]:
    """Parse the data section of an ASCII PLY; `stream` is the open file, `size` its length."""
    lines = _Lines(path, header)
    stream.seek(header.length)
    out: dict[str, Columns] = {}
    row0 = 0  # rows (non-blank lines) of the body before this element
    for element in header.elements:
        try:
            out[element.name] = _element(stream, element, size, row0, lines)
        except _VariableLists:
            return _read_with_plyfile(header, lines)
        row0 += element.count
    if stream.read().strip():
        lines.raise_trailing(row0)
    return out


def _element(
    stream: BinaryIO, element: PlyElementSpec, size: int, row0: int, lines: _Lines
) -> Columns:
    if element.count == 0:
        return {
            p.name: np.zeros((0, 0) if p.count_dtype else 0, p.dtype) for p in element.properties
        }
    first = _peek_row(stream)
    if first is None:
        lines.raise_truncated(element, row0)
    width, lengths = _layout(first, element, row0, lines)
    # loadtxt allocates max_rows x width up front: every value takes at least 2 bytes
    # (a digit and a separator), so a count the remaining bytes cannot hold is refused first (F3).
    if element.count * 2 * width > size - stream.tell() + 1:
        if not element.has_lists:
            lines.check_widths(element, row0, width)  # a short row explains it better
        lines.raise_truncated(element, row0)
    try:
        with warnings.catch_warnings():  # "line contained no data": blank lines are skipped
            warnings.filterwarnings("ignore", "Input line", UserWarning)
            values = np.loadtxt(stream, dtype=np.float64, comments=None, max_rows=element.count,
                                ndmin=2, encoding="latin-1")  # fmt: skip
    except ValueError as error:
        if element.has_lists:
            raise _VariableLists from None
        lines.raise_bad_rows(element, row0, width, str(error))
    if len(values) < element.count:
        lines.raise_truncated(element, row0)
    columns: Columns = {}
    at = 0
    for p in element.properties:
        if p.count_dtype is None:
            columns[p.name] = _cast(values[:, at], p.dtype, p.name, row0, lines)
            at += 1
            continue
        if (values[:, at] != lengths[p.name]).any():
            raise _VariableLists
        items = values[:, at + 1 : at + 1 + lengths[p.name]]
        columns[p.name] = _cast(items, p.dtype, p.name, row0, lines)
        at += 1 + lengths[p.name]
    return columns


def _peek_row(stream: BinaryIO) -> list[bytes] | None:
    """Tokens of the next non-blank line, leaving the stream where it was."""
    start = stream.tell()
    try:
        for line in iter(stream.readline, b""):
            if line.strip():
                return line.split()
        return None
    finally:
        stream.seek(start)


def _layout(
    tokens: list[bytes], element: PlyElementSpec, row0: int, lines: _Lines
) -> tuple[int, dict[str, int]]:
    """Values per row and each list's length, from the element's first row."""
    if not element.has_lists:
        width = len(element.properties)
        if len(tokens) != width:
            lines.raise_bad_rows(element, row0, width, "")
        return width, {}
    lengths: dict[str, int] = {}
    at = 0
    for p in element.properties:
        if p.count_dtype is None:
            at += 1
            continue
        try:
            k = int(float(tokens[at]))
        except (IndexError, ValueError):
            lines.raise_row(row0, f"bad '{element.name}' row: list '{p.name}' has no length")
        if k < 0:
            lines.raise_row(row0, f"bad '{element.name}' row: negative list length {k}")
        lengths[p.name] = k
        at += 1 + k
    if at != len(tokens):
        lines.raise_row(
            row0, f"'{element.name}' row has {len(tokens)} values, its lists declare {at}"
        )
    return at, lengths


def _cast(column: np.ndarray, dtype: str, name: str, row0: int, lines: _Lines) -> np.ndarray:
    """float64 values -> the declared type; integers must be whole and in range (F5)."""
    target = np.dtype(dtype)
    if target.kind == "f":
        return column.astype(target)
    info = np.iinfo(target)
    bad = ~np.isfinite(column) | (column != np.round(column))
    bad |= (column < info.min) | (column > info.max)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(column), -1).any(axis=1))
        row = int(rows[0])
        value = float(column.reshape(len(column), -1)[row][bad.reshape(len(column), -1)[row]][0])
        lines.raise_row(
            row0 + row,
            f"(row {row}): property '{name}' value {value:g} is not a {target.name} in "
            f"[{info.min}, {info.max}] ({int(bad.sum())} such values)",
            sep=" ",
        )
    return column.astype(target)


def _read_with_plyfile(header: PlyHeader, lines: _Lines) -> dict[str, Columns]:
    """plyfile's ASCII reader, for variable-length lists (slow: one Python call per value)."""
    data = lines.data
    available = data.count(b"\n", header.length) + 1
    row0 = 0
    for element in header.elements:  # plyfile allocates each element's rows up front (F3)
        if row0 + element.count > available:
            lines.raise_truncated(element, row0)
        row0 += element.count
    text = io.TextIOWrapper(io.BytesIO(data), encoding="latin-1")
    try:
        parsed = plyfile.PlyData.read(text)
    except plyfile.PlyElementParseError as error:
        name = error.element.name if error.element else None
        before = 0
        for element in header.elements:
            if element.name == name:
                break
            before += element.count
        where = f" property '{error.prop.name}'" if error.prop else ""
        lines.raise_row(before + (error.row or 0), f"bad row{where} ({error.message})")
    except (ValueError, OverflowError) as error:
        raise PointCloudReadError(f"{lines.path}: bad ASCII data ({error})") from None
    if text.read().strip():
        lines.raise_trailing(row0)
    out: dict[str, Columns] = {}
    for element in header.elements:
        table = parsed[element.name].data
        out[element.name] = {
            p.name: _list_column(table[p.name], p.dtype) for p in element.properties
        }
    return out


def _list_column(values: np.ndarray, dtype: str) -> np.ndarray:
    """plyfile's column as ours: scalars as is, lists [rows, k] if constant, else objects."""
    if values.dtype != object:
        return np.array(values, dtype=dtype)
    if len({len(v) for v in values}) == 1:
        return np.stack([np.asarray(v, dtype=dtype) for v in values])
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = np.asarray(v, dtype=dtype)
    return out if len(values) else np.zeros((0, 0), dtype)


class _Lines:
    """Line numbers of the body's rows, computed on first use (i.e. only on the error path)."""

    def __init__(self, path: str, header: PlyHeader) -> None:
        self.path = path
        self.header = header
        self._data: bytes | None = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = Path(self.path).read_bytes()
        return self._data

    def _rows(self) -> tuple[int, list[bytes], list[int]]:
        first_line = self.data[: self.header.length].count(b"\n") + 1
        body = self.data[self.header.length :].split(b"\n")
        return first_line, body, [i for i, line in enumerate(body) if line.strip()]

    def raise_row(self, row: int, message: str, sep: str = ": ") -> NoReturn:
        first_line, _, rows = self._rows()
        line = first_line + rows[row] if row < len(rows) else first_line + len(rows)
        raise PointCloudReadError(f"{self.path}: line {line}{sep}{message}")

    def raise_truncated(self, element: PlyElementSpec, row0: int) -> NoReturn:
        first_line, body, rows = self._rows()
        raise PointCloudReadError(
            f"{self.path}: truncated: element '{element.name}' declares {element.count} rows but "
            f"only {max(len(rows) - row0, 0)} data lines remain (file has "
            f"{first_line + len(body) - 1} lines)"
        )

    def raise_trailing(self, used: int) -> NoReturn:
        first_line, _, rows = self._rows()
        raise PointCloudReadError(
            f"{self.path}: {len(rows) - used} unexpected data lines after the declared elements, "
            f"first at line {first_line + rows[used]} (header count smaller than the data?)"
        )

    def check_widths(self, element: PlyElementSpec, row0: int, width: int) -> None:
        """Raise on the first row of `element` that has not `width` values."""
        first_line, body, rows = self._rows()
        for i in rows[row0 : row0 + element.count]:
            found = len(body[i].split())
            if found != width:
                raise PointCloudReadError(
                    f"{self.path}: line {first_line + i}: element '{element.name}' expects "
                    f"{width} values, found {found}: {body[i][:80]!r}"
                )

    def raise_bad_rows(self, element: PlyElementSpec, row0: int, width: int, why: str) -> NoReturn:
        """Name the first row of `element` with the wrong number of values or a bad token."""
        self.check_widths(element, row0, width)
        first_line, body, rows = self._rows()
        for i in rows[row0 : row0 + element.count]:
            for j, token in enumerate(body[i].split()):
                try:
                    float(token)
                except ValueError:
                    raise PointCloudReadError(
                        f"{self.path}: line {first_line + i}: cannot parse value {j + 1} "
                        f"{token.decode('latin-1')!r} as a number"
                    ) from None
        raise PointCloudReadError(f"{self.path}: element '{element.name}': {why}")
