"""PNG pictures of scenes: one colouring (`render_scene`) or prediction vs truth (`compare_scenes`).

Points are rasterised by `stseg_viz.raster` (a z-buffer, so depth order is exact and a million
points take about a second) and the image is laid out with matplotlib's Agg backend: title, class
legend, no axes. No pyplot state is touched, so this is safe in threads and notebooks.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from stseg_data.atomic import atomic_write
from stseg_viz.coloring import Coloring, error_coloring, label_legend
from stseg_viz.colorize import colorize_labels, rgb_to_uint8
from stseg_viz.errors import VizInputError
from stseg_viz.inputs import load_colored_scene, load_inputs
from stseg_viz.outliers import bulk_of
from stseg_viz.palettes import IGNORE_LABEL, get_palette
from stseg_viz.raster import cutaway_mask, project, rasterize

PANEL_PX = (1000, 800)  # width, height of one panel's image
TITLE_PX, SUPTITLE_PX, LEGEND_PX = 30, 40, 240
DPI = 100
BACKGROUND = "white"
NO_COLOR = (150, 150, 150)
OUTLIERS_NOT_DRAWN = "the picture is framed on the bulk and they are not drawn"


def render_scene(
    scene: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    color_by: str = "rgb",
    labels: str | os.PathLike[str] | None = None,
    embeddings: str | os.PathLike[str] | None = None,
    palette: str = "scannet20",
    label_ids: str = "train",
    scene_label_ids: str = "train",
    view: str = "iso",
    legend: bool = True,
    title: str | None = None,
    ignore_label: int = IGNORE_LABEL,
    point_size: int | None = None,
    cutaway: bool = False,
) -> Coloring:
    """Render `scene` coloured by `color_by` to the PNG `out`; returns the colouring used.

    `cutaway` hides the ceiling and the walls facing the camera (`raster.cutaway_mask`), to see
    into closed indoor rooms. A few points far outside the scene's bulk (`outliers.find_outliers`)
    are left out of the picture, with a warning, so one stray point cannot shrink the scene to a
    dot.
    """
    cloud, _, coloring = load_colored_scene(
        scene,
        color_by,
        labels=labels,
        embeddings=embeddings,
        palette=palette,
        label_ids=label_ids,
        scene_label_ids=scene_label_ids,
        ignore_label=ignore_label,
    )
    keep = _visible(cloud.xyz, view, cutaway, where=str(scene))
    image = rasterize(cloud.xyz[keep], coloring.colors[keep], view=view, point_size=point_size)
    name = title if title is not None else f"{Path(scene).name} — {color_by} ({view} view)"
    figure = _figure([(image, name, coloring.legend if legend else [])], columns=1)
    save_png(figure, out)
    return coloring


def compare_scenes(
    pred: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    palette: str = "scannet20",
    label_ids: str = "train",
    scene_label_ids: str = "train",
    view: str = "iso",
    ignore_label: int = IGNORE_LABEL,
    title: str | None = None,
    cutaway: bool = False,
) -> dict[str, float]:
    """Four panels side by side: input colours, prediction, ground truth, errors.

    `gt` is a scene with ground-truth labels; `pred` is a labels file for the same points (.txt,
    .npy, or a .ply with a `label` field such as `stseg-models predict` writes). Returns
    {"accuracy": ..., "points": ...} over non-ignored points (far outliers included: they are
    only left out of the picture, as in `render_scene`).
    """
    cloud, prediction, _ = load_inputs(
        gt, pred, label_ids=label_ids, scene_label_ids=scene_label_ids, palette=palette
    )
    assert prediction is not None
    if cloud.labels is None:
        raise VizInputError(f"{gt}: has no ground-truth labels to compare the prediction with")
    pal = get_palette(palette)
    pred_colors = colorize_labels(prediction, pal, ignore_label=ignore_label, where=str(pred))
    gt_colors = colorize_labels(cloud.labels, pal, ignore_label=ignore_label, where=str(gt))
    errors = error_coloring(prediction, cloud.labels, ignore_label=ignore_label, where=str(pred))
    correct, wrong = errors.legend[0][2], errors.legend[1][2]
    accuracy = correct / max(correct + wrong, 1)
    rgb = rgb_to_uint8(cloud.rgb) if cloud.rgb is not None else np.tile(NO_COLOR, (len(cloud), 1))

    # One legend (right column) for both label panels: every class present in either.
    both = np.concatenate([prediction, cloud.labels])
    panels = [
        (rgb, "input colours" if cloud.rgb is not None else "input (no colour)", []),
        (pred_colors, f"prediction: {Path(pred).name}", label_legend(both, pal, ignore_label)),
        (gt_colors, "ground truth", []),
        (errors.colors, f"errors (accuracy {100 * accuracy:.1f} %)", errors.legend),
    ]
    keep = _visible(cloud.xyz, view, cutaway, where=str(gt))
    projection = project(cloud.xyz[keep], view=view)  # one z-buffer for the four panels
    images = [(projection.paint(colors[keep]), name, rows) for colors, name, rows in panels]
    figure = _figure(images, columns=2, suptitle=title or f"{Path(gt).name} ({view} view)")
    save_png(figure, out)
    return {"accuracy": accuracy, "points": float(correct + wrong)}


def _visible(xyz: np.ndarray, view: str, cutaway: bool, *, where: str) -> np.ndarray:
    """Indices of the points to draw: all but far outliers (warned about), less the cut-away ones
    if `cutaway` (which must leave some). The cutaway's box is the bulk's, not the outliers'."""
    bulk = bulk_of(xyz, where, OUTLIERS_NOT_DRAWN)
    if not cutaway:
        return bulk
    keep = bulk[cutaway_mask(xyz[bulk], view)]
    return keep if len(keep) else bulk


def _figure(
    panels: list[tuple[np.ndarray, str, list]], *, columns: int, suptitle: str | None = None
) -> Figure:
    """Panels on a pixel grid; each rasterised image is placed 1:1 with `figimage` (no resampling,
    so colours stay exact and a large image costs no interpolation), titles above, legends right."""
    rows = (len(panels) + columns - 1) // columns
    width, height = PANEL_PX
    legend_px = LEGEND_PX if any(legend for _, _, legend in panels) else 0
    top_px = SUPTITLE_PX if suptitle else 0
    fig_w = columns * width + legend_px
    fig_h = rows * (height + TITLE_PX) + top_px
    figure = Figure(figsize=(fig_w / DPI, fig_h / DPI), dpi=DPI, facecolor=BACKGROUND)
    FigureCanvasAgg(figure)
    for index, (image, name, legend) in enumerate(panels):
        row, column = divmod(index, columns)
        x0 = column * width
        y_top = fig_h - top_px - row * (height + TITLE_PX)  # pixels from the bottom
        figure.figimage(_on_background(image), xo=x0, yo=y_top - TITLE_PX - height, origin="upper")
        figure.text((x0 + width / 2) / fig_w, (y_top - TITLE_PX / 2) / fig_h, name,
                    ha="center", va="center", fontsize=11)  # fmt: skip
        if legend:
            handles = [
                Patch(facecolor=_unit(color), edgecolor="0.3", label=f"{label} ({count:,})")
                for label, color, count in legend
            ]
            # Legends sit in the column right of the grid, level with their panel.
            anchor = ((columns * width + 8) / fig_w, (y_top - TITLE_PX) / fig_h)
            figure.legend(handles=handles, loc="upper left", bbox_to_anchor=anchor, fontsize=10,
                          frameon=False)  # fmt: skip
    if suptitle:
        figure.text(0.5, 1 - top_px / 2 / fig_h, suptitle, ha="center", va="center", fontsize=13)
    return figure


def _unit(color: tuple[int, int, int]) -> tuple[float, float, float]:
    return (color[0] / 255.0, color[1] / 255.0, color[2] / 255.0)


def _on_background(image: np.ndarray) -> np.ndarray:
    """RGB uint8 image: drawn pixels as they are, the rest white (no alpha blending surprises)."""
    rgb = np.full((*image.shape[:2], 3), 255, dtype=np.uint8)
    drawn = image[..., 3] > 0
    rgb[drawn] = image[drawn, :3]
    return rgb


def save_png(figure: Figure, out: str | os.PathLike[str]) -> None:
    """Write `figure` as PNG atomically: matplotlib writes into the temporary file, so a full disk
    midway leaves no partial PNG (and any earlier file at `out` unchanged)."""
    with atomic_write(out, "wb") as handle:
        # zlib level 3: ~40 % faster than the default 6 for about the same size on these pictures.
        figure.savefig(
            handle,
            format="png",
            dpi=DPI,
            facecolor=figure.get_facecolor(),
            pil_kwargs={"compress_level": 3},
        )
