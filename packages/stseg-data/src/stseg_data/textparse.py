"""Whitespace-separated numeric text (S3DIS `x y z r g b`, split lists) with line numbers in errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stseg_data.errors import PointCloudReadError


def read_numeric_lines(path: str | os.PathLike[str], columns: int) -> np.ndarray:
    """Parse a text file of `columns` numbers per non-empty line into float64 [N, columns].

    A wrong number of values, a non-numeric token or a control character inside a number
    (a known S3DIS defect) raises `PointCloudReadError` naming the file, line and token (F4).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise PointCloudReadError(f"{path}: cannot read ({error.strerror or error})") from None
    lines = data.split(b"\n")
    numbers = [i + 1 for i, line in enumerate(lines) if line.strip()]
    body = [lines[i - 1] for i in numbers]
    tokens = b" ".join(body).split()
    if len(tokens) != len(body) * columns:
        for line, lineno in zip(body, numbers):
            found = len(line.split())
            if found != columns:
                raise PointCloudReadError(
                    f"{path}: line {lineno}: expected {columns} values, found {found}: {line[:80]!r}"
                )
    try:
        return np.asarray(tokens).astype(np.float64).reshape(len(body), columns)
    except ValueError:
        pass
    for k, token in enumerate(tokens):
        try:
            float(token)
        except ValueError:
            raise PointCloudReadError(
                f"{path}: line {numbers[k // columns]}: cannot parse {token.decode('latin-1')!r} "
                "as a number"
            ) from None
    raise PointCloudReadError(f"{path}: unparseable numbers")
