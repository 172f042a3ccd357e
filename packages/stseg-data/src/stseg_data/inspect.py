"""`describe_file`: a short text report of a scene file (fields, count, bounds, label histogram)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stseg_data.io import read_scene
from stseg_data.labels import IGNORE_LABEL


def describe_file(path: str | os.PathLike[str]) -> str:
    """Fields, point count, bounds, colour range and label/instance histograms of a scene file."""
    lines = [f"file: {path}"]
    if Path(path).suffix.lower() == ".ply":
        from stseg_data.ply import read_ply_elements

        header, _ = read_ply_elements(path)
        lines.append(f"format: {header.format}")
        for element in header.elements:
            props = ", ".join(
                f"{p.name}:{p.dtype}" + ("[list]" if p.count_dtype else "")
                for p in element.properties
            )
            lines.append(f"element {element.name} ({element.count}): {props}")
        lines += [f"comment: {c}" for c in header.comments]
    cloud = read_scene(path)
    lines.append(f"points: {len(cloud)}")
    lo, hi = cloud.xyz.min(axis=0), cloud.xyz.max(axis=0)
    lines.append(
        "bounds: min "
        + " ".join(f"{v:.3f}" for v in lo)
        + " / max "
        + " ".join(f"{v:.3f}" for v in hi)
    )
    lines.append(
        "colour: none"
        if cloud.rgb is None
        else f"colour: [{cloud.rgb.min():.3f}, {cloud.rgb.max():.3f}]"
    )
    for name, values in (("labels", cloud.labels), ("instances", cloud.instances)):
        if values is None:
            lines.append(f"{name}: none")
            continue
        ids, counts = np.unique(values, return_counts=True)
        if name == "instances":
            lines.append(f"instances: {int((ids > 0).sum())} distinct ids > 0")
            continue
        hist = ", ".join(
            f"{'ignore' if i == IGNORE_LABEL else int(i)}:{int(c)}" for i, c in zip(ids, counts)
        )
        lines.append(f"labels: {hist}")
    return "\n".join(lines)
