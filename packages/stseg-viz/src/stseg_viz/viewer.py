"""The offline interactive viewer: one self-contained HTML file with the points and a WebGL viewer.

Everything is inlined (points as base64, the JavaScript from `viewer_assets/viewer.js`), and the
page's Content-Security-Policy forbids any fetch, so it opens from disk, in a mail attachment or
on a machine without internet. Positions are quantised to 16 bits per axis inside the bounding box
(error below 1/65535 of the scene's extent), colours are uint8: 6 + 3 bytes per point and colouring.
Far outliers (`outliers.find_outliers`) are left out, with a warning: inside their bounding box
the scene's own points would all quantise to one position.

The payload is JSON inside a <script> element. `<`, `>` and `&` are written as JSON escapes
(\\u003c ...), and U+2028 / U+2029 too, so no title, file name or class name can end the element
or open an HTML comment in it (`<!--<script>` would otherwise swallow the viewer's own script).
"""

from __future__ import annotations

import base64
import json
import os
from importlib.resources import files
from pathlib import Path

import numpy as np

from stseg_data.atomic import atomic_write
from stseg_data.pointcloud import PointCloud
from stseg_viz.coloring import COLOR_MODES, error_coloring, scene_colors
from stseg_viz.colorize import ignored_mask
from stseg_viz.errors import VizInputError
from stseg_viz.inputs import load_inputs
from stseg_viz.outliers import bulk_of
from stseg_viz.palettes import IGNORE_COLOR, IGNORE_LABEL, Palette, get_palette

#: Scenes larger than this are randomly subsampled (seeded) to keep the HTML file small.
DEFAULT_MAX_POINTS = 500_000
NO_COLOR = (170, 170, 170)
OUTLIERS_HIDDEN = "the viewer is framed on the bulk and they are not shown"
#: Characters written as JSON escapes inside the page's <script> (see the module docstring).
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                  "\u2028": "\\u2028", "\u2029": "\\u2029"}  # fmt: skip


def write_viewer(
    scene: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    labels: str | os.PathLike[str] | None = None,
    embeddings: str | os.PathLike[str] | None = None,
    palette: str = "scannet20",
    label_ids: str = "train",
    scene_label_ids: str = "train",
    ignore_label: int = IGNORE_LABEL,
    max_points: int = DEFAULT_MAX_POINTS,
    title: str | None = None,
    seed: int = 0,
) -> dict:
    """Write the viewer of `scene` (optionally with predicted `labels`) to `out`; return its summary.

    Colourings offered: rgb (if the scene has colour), label (the prediction if given, else the
    scene's labels), instance (if the scene has instance ids), error (prediction vs the scene's
    labels, when both exist), embedding (if an `embeddings` .npy [N, D] is given). Classes of the shown labels can be toggled on and off.
    """
    cloud, prediction, emb = load_inputs(
        scene,
        labels,
        embeddings,
        label_ids=label_ids,
        scene_label_ids=scene_label_ids,
        palette=palette,
    )
    html, summary = viewer_html(
        cloud,
        prediction=prediction,
        palette=get_palette(palette),
        ignore_label=ignore_label,
        max_points=max_points,
        title=title or Path(scene).name,
        seed=seed,
        labels_source=str(labels),
        embeddings=emb,
    )
    with atomic_write(out, "w") as handle:
        handle.write(html)
    return summary


def viewer_html(
    cloud: PointCloud,
    *,
    prediction: np.ndarray | None = None,
    palette: Palette,
    ignore_label: int = IGNORE_LABEL,
    max_points: int = DEFAULT_MAX_POINTS,
    title: str = "scene",
    seed: int = 0,
    labels_source: str = "--labels",
    embeddings: np.ndarray | None = None,
) -> tuple[str, dict]:
    """(HTML text, summary) of the viewer for an in-memory cloud; see `write_viewer`."""
    if max_points < 1:
        raise VizInputError(f"--max-points must be at least 1, got {max_points}")
    colors: dict[str, np.ndarray] = {}
    legends: dict[str, list[dict]] = {}
    for mode in COLOR_MODES:
        if not _available(mode, cloud, prediction, embeddings):
            continue
        if mode == "error":
            assert prediction is not None and cloud.labels is not None
            coloring = error_coloring(
                prediction, cloud.labels, ignore_label=ignore_label, where=labels_source
            )
            legends[mode] = [_row(name, color, count) for name, color, count in coloring.legend]
        else:
            given = prediction if mode == "label" else None
            coloring = scene_colors(
                cloud,
                mode,
                labels=given,
                palette=palette,
                ignore_label=ignore_label,
                labels_source=labels_source,
                embeddings=embeddings,
            )
            if mode == "instance":
                legends[mode] = [_row(*row) for row in coloring.legend]
        colors[mode] = coloring.colors
    if not colors:  # xyz only: draw grey points rather than nothing
        colors["rgb"] = np.tile(np.array(NO_COLOR, dtype=np.uint8), (len(cloud), 1))

    bulk = bulk_of(cloud.xyz, cloud.path or title, OUTLIERS_HIDDEN)
    shown = bulk[_subsample(len(bulk), max_points, seed)]
    group_labels = prediction if prediction is not None else cloud.labels
    order, groups = _groups(group_labels, shown, palette, ignore_label)
    index = shown[order]
    payload = {
        "title": title,
        "note": _note(len(index), len(cloud), len(cloud) - len(bulk)),
        "groupTitle": "predicted classes" if prediction is not None else "classes",
        **_positions(cloud.xyz[index]),
        "colors": {mode: _b64(values[index]) for mode, values in colors.items()},
        "legends": legends,
        "groups": groups,
    }
    html = _template().replace("__STSEG_SCRIPT__", _script())
    html = html.replace("__STSEG_DATA__", script_safe_json(payload))
    summary = {"points": len(cloud), "shown": len(index), "modes": list(colors), "bytes": len(html)}
    return html, summary


def script_safe_json(payload: object) -> str:
    """`payload` as JSON that is safe inside an HTML <script> element: no `<`, `>`, `&`, U+2028
    or U+2029 characters, each written as its JSON escape (the same JSON value)."""
    text = json.dumps(payload)
    for char, escape in _SCRIPT_UNSAFE.items():
        text = text.replace(char, escape)
    return text


def _available(
    mode: str, cloud: PointCloud, prediction: np.ndarray | None, embeddings: np.ndarray | None
) -> bool:
    if mode == "rgb":
        return cloud.rgb is not None
    if mode == "label":
        return prediction is not None or cloud.labels is not None
    if mode == "instance":
        return cloud.instances is not None
    if mode == "embedding":
        return embeddings is not None
    return prediction is not None and cloud.labels is not None


def _subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def _groups(
    labels: np.ndarray | None, shown: np.ndarray, palette: Palette, ignore_label: int
) -> tuple[np.ndarray, list[dict]]:
    """Sort the shown points by class so each class is one contiguous draw range (a toggle)."""
    if labels is None:
        everything = {**_row("all points", NO_COLOR, len(shown)), "key": "all", "start": 0}
        return np.arange(len(shown)), [everything]
    values = labels[shown]
    keys = np.where(ignored_mask(values, ignore_label), -1, values)
    order = np.argsort(keys, kind="stable")
    classes, starts, counts = np.unique(keys[order], return_index=True, return_counts=True)
    groups = []
    for key, start, count in zip(classes, starts, counts):
        if key < 0:
            name, color = "ignored", IGNORE_COLOR
        else:
            name, color = palette.class_names[key], tuple(palette.colors[key])
        groups.append({**_row(name, color, int(count)), "key": int(key), "start": int(start)})
    return order, groups


def _positions(xyz: np.ndarray) -> dict:
    low, high = xyz.min(axis=0), xyz.max(axis=0)
    size = np.maximum(high - low, 1e-9)
    quantised = np.round((xyz - low) / size * 65535).astype("<u2")
    return {
        "positions": base64.b64encode(quantised.tobytes()).decode("ascii"),
        "qmin": low.tolist(),
        "qsize": size.tolist(),
        "center": ((low + high) / 2).tolist(),
        "radius": float(np.linalg.norm(size) / 2),
    }


def _b64(colors: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(colors, dtype=np.uint8).tobytes()).decode("ascii")


def _row(name: str, color: tuple, count: int) -> dict:
    return {"name": name, "color": [int(c) for c in color], "count": int(count)}


def _note(shown: int, total: int, outliers: int = 0) -> str:
    far = f"{outliers:,} far outliers hidden" if outliers else ""
    if shown + outliers == total:
        return f"{shown:,} of {total:,} points shown ({far})" if outliers else f"{total:,} points"
    sample = "random subsample; raise --max-points"
    return f"{shown:,} of {total:,} points shown ({sample}{'; ' + far if far else ''})"


def _template() -> str:
    return files("stseg_viz").joinpath("viewer_assets/viewer.html").read_text(encoding="utf-8")


def _script() -> str:
    return files("stseg_viz").joinpath("viewer_assets/viewer.js").read_text(encoding="utf-8")
