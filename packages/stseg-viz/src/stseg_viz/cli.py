"""The `stseg-viz` command line: a thin Click layer over the library (one call per command).

Option names equal the library functions' keyword arguments, so each command passes them through.
Library modules are imported inside each command so `stseg-viz --help` does not load matplotlib.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from stseg_data.cli_options import out_option, overwrite_option
from stseg_data.cli_support import StsegGroup
from stseg_viz import __version__
from stseg_viz.coloring import COLOR_MODES
from stseg_viz.inputs import LABEL_ID_SPACES
from stseg_viz.output_checks import check_file_output, check_folder_output
from stseg_viz.palettes import IGNORE_LABEL, PALETTE_NAMES
from stseg_viz.raster import VIEWS

_path = click.Path(path_type=Path, dir_okay=True)
_color_by = click.option(
    "--color-by", type=click.Choice(COLOR_MODES), default="rgb", show_default=True,
    help="rgb: the scene's colours; label / instance: from the scene or --labels; "
    "error: --labels (prediction) against the scene's labels; embedding: --embeddings, PCA.",
)  # fmt: skip
_labels = click.option(
    "--labels", type=_path, default=None,
    help="Per-point labels: .txt (one id per line), .npy, or .ply with a `label` field.",
)  # fmt: skip
_embeddings = click.option(
    "--embeddings", type=_path, default=None,
    help="Per-point embeddings, .npy float [N, D], shown as colours by PCA (--color-by embedding).",
)  # fmt: skip
_palette = click.option(
    "--palette", type=click.Choice(PALETTE_NAMES), default="scannet20", show_default=True,
    help="Label colours and class names.",
)  # fmt: skip
_label_ids = click.option(
    "--label-ids", type=click.Choice(LABEL_ID_SPACES), default="train", show_default=True,
    help="Ids in the --labels / PRED file: train (the palette's ids) or nyu40 (raw NYU40 ids, "
    "as ScanNet checkpoints' predictions), converted to the scannet20 classes.",
)  # fmt: skip
_scene_label_ids = click.option(
    "--scene-label-ids", type=click.Choice(LABEL_ID_SPACES), default="train", show_default=True,
    help="Ids of the labels stored in the scene file (nyu40 for raw ScanNet *.labels.ply).",
)  # fmt: skip
_ignore = click.option(
    "--ignore-label", type=int, default=IGNORE_LABEL, show_default=True,
    help="Label id meaning 'no label' (negative ids are always ignored).",
)  # fmt: skip
_view = click.option(
    "--view", type=click.Choice(VIEWS), default="iso", show_default=True,
    help="Camera: iso (from above at an angle), top or front.",
)  # fmt: skip
_title = click.option(
    "--title", default=None, help="Title above the picture (default: from the file name)."
)
_out = out_option("Output file.", required=True)
_overwrite = overwrite_option("Replace --out if it exists.")
_cutaway = click.option(
    "--cutaway/--no-cutaway", default=False, show_default=True,
    help="Hide the ceiling and the walls facing the camera (closed indoor rooms).",
)  # fmt: skip


@click.group(cls=StsegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stseg-viz")
def main() -> None:
    """stseg-viz: see `stseg-viz COMMAND --help`."""
    _show_warnings()


class _WarningLine(logging.Handler):
    """The library's warnings (e.g. far outliers) as `warning: ...` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        # click.echo looks up the current stderr each time (CliRunner swaps it).
        click.echo(f"warning: {record.getMessage()}", err=True)


def _show_warnings() -> None:
    logger = logging.getLogger("stseg_viz")
    if not any(isinstance(handler, _WarningLine) for handler in logger.handlers):
        logger.addHandler(_WarningLine(logging.WARNING))


@main.command()
@click.argument("scene", type=_path)
@_color_by
@_labels
@_embeddings
@_palette
@_label_ids
@_scene_label_ids
@_ignore
@_out
@_overwrite
def export(scene: Path, out: Path, overwrite: bool, **options: Any) -> None:
    """Write SCENE as a PLY whose vertex colours show the chosen colouring."""
    check_file_output(out, overwrite)
    from stseg_viz.export import export_colored_ply

    export_colored_ply(scene, out, **options)
    click.echo(f"wrote {out}")


@main.command()
@click.argument("scene", type=_path)
@_color_by
@_labels
@_embeddings
@_palette
@_label_ids
@_scene_label_ids
@_ignore
@_view
@_cutaway
@click.option("--legend/--no-legend", default=True, show_default=True, help="Class colour legend.")
@_title
@click.option(
    "--point-size", type=click.IntRange(1, 15), default=None, help="Pixels (default: auto)."
)
@_out
@_overwrite
def render(scene: Path, out: Path, overwrite: bool, **options: Any) -> None:
    """Render SCENE to a PNG picture."""
    check_file_output(out, overwrite)
    from stseg_viz.render import render_scene

    render_scene(scene, out, **options)
    click.echo(f"wrote {out}")


@main.command()
@click.argument("pred", type=_path)
@click.argument("gt", type=_path)
@_palette
@_label_ids
@_scene_label_ids
@_ignore
@_view
@_cutaway
@_title
@_out
@_overwrite
def compare(pred: Path, gt: Path, out: Path, overwrite: bool, **options: Any) -> None:
    """Input colours, prediction PRED, ground truth GT and errors side by side in one PNG.

    PRED: per-point labels (.txt, .npy or .ply with `label`); GT: the scene with true labels.
    """
    check_file_output(out, overwrite)
    from stseg_viz.render import compare_scenes

    result = compare_scenes(pred, gt, out, **options)
    click.echo(f"wrote {out} (accuracy {100 * result['accuracy']:.2f} %)")


@main.command()
@click.argument("scene", type=_path)
@_labels
@_embeddings
@_palette
@_label_ids
@_scene_label_ids
@_ignore
@click.option(
    "--max-points", type=click.IntRange(min=1), default=500_000, show_default=True,
    help="Most points in the page (a larger scene is randomly subsampled).",
)  # fmt: skip
@click.option("--title", default=None, help="Page title (default: the scene's file name).")
@_out
@_overwrite
def html(scene: Path, out: Path, overwrite: bool, **options: Any) -> None:
    """Write a self-contained interactive HTML viewer of SCENE (opens offline)."""
    check_file_output(out, overwrite)
    from stseg_viz.viewer import write_viewer

    summary = write_viewer(scene, out, **options)
    click.echo(f"wrote {out} ({summary['shown']:,} points, {summary['bytes'] / 1e6:.1f} MB)")


@main.command()
@click.argument("metrics_file", metavar="METRICS_JSON", type=_path)
@out_option("Output folder.", required=True)
@overwrite_option(
    "Write into a non-empty --out (confusion.png, iou.png, ... are replaced; other files stay)."
)
def metrics(metrics_file: Path, out: Path, overwrite: bool) -> None:
    """Confusion matrix and per-class IoU / AP bar charts from METRICS_JSON into folder OUT."""
    check_folder_output(out, overwrite)
    from stseg_viz.metric_plots import plot_metrics

    for path in plot_metrics(metrics_file, out):
        click.echo(f"wrote {path}")


@main.command()
@click.argument("run", type=_path)
@_out
@_overwrite
def curves(run: Path, out: Path, overwrite: bool) -> None:
    """Loss, learning rate and validation mIoU of RUN (a folder with log.jsonl, or the file)."""
    check_file_output(out, overwrite)
    from stseg_viz.curves import plot_curves

    plot_curves(run, out)
    click.echo(f"wrote {out}")
