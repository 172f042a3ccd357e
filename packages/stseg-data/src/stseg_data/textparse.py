"""Whitespace-separated numeric text (S3DIS `x y z r g b`) with line numbers in errors.

numpy.loadtxt parses (C, no token lists in Python); only when it fails are the lines walked again
to name the first offending line and token.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NoReturn

import numpy as np

from stseg_data.errors import PointCloudReadError


def read_numeric_lines(path: str | os.PathLike[str], columns: int) -> np.ndarray:
    """Parse a text file of `columns` numbers per non-empty line into float64 [N, columns].

    A wrong number of values, a non-numeric token or a control character inside a number
    (a known S3DIS defect) raises `PointCloudReadError` naming the file, line and token (F4).
    """
    try:
        with open(path, "rb") as stream, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "loadtxt: input contained no data", UserWarning)
            values = np.loadtxt(stream, dtype=np.float64, comments=None, ndmin=2,
                                encoding="latin-1")  # fmt: skip
    except OSError as error:
        raise PointCloudReadError(f"{path}: cannot read ({error.strerror or error})") from None
    except ValueError:
        _raise_first_bad_line(path, columns)
    if values.size == 0:
        return np.zeros((0, columns))
    if values.shape[1] != columns:
        _raise_first_bad_line(path, columns)
    return values


def _raise_first_bad_line(path: str | os.PathLike[str], columns: int) -> NoReturn:
    lines = Path(path).read_bytes().split(b"\n")
    body = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    for lineno, line in body:
        found = len(line.split())
        if found != columns:
            raise PointCloudReadError(
                f"{path}: line {lineno}: expected {columns} values, found {found}: {line[:80]!r}"
            )
    for lineno, line in body:
        for token in line.split():
            try:
                float(token)
            except ValueError:
                raise PointCloudReadError(
                    f"{path}: line {lineno}: cannot parse {token.decode('latin-1')!r} as a number"
                ) from None
    raise PointCloudReadError(f"{path}: unparseable numbers")
