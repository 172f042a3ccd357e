"""The `stseg-models` command line: a thin Click layer over the library."""

from __future__ import annotations

from pathlib import Path

import click

from stseg_data.cli_options import (
    device_option,
    out_option,
    overwrite_option,
    precision_option,
    rotations_option,
    threads_option,
)
from stseg_data.cli_support import StsegGroup
from stseg_models import __version__


@click.group(cls=StsegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stseg-models")
def main() -> None:
    """stseg-models: see `stseg-models COMMAND --help`."""


@main.command("list")
def list_command() -> None:
    """List every registered network name."""
    from stseg_models.zoo import list_models

    click.echo("\n".join(list_models()))


@main.command("describe")
@click.argument("name")
@click.option(
    "--in-channels",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Input features per point (3: colour).",
)
@click.option(
    "--out-channels",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Output classes.",
)
def describe_command(name: str, in_channels: int, out_channels: int) -> None:
    """Layout, blocks, channels and parameter count of network NAME."""
    from stseg_models.zoo import describe

    click.echo(str(describe(name, in_channels, out_channels)))


def _parse_color(_ctx: click.Context, _param: click.Parameter, value: str | None):
    if value is None:
        return None
    try:
        rgb = tuple(float(v) for v in value.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0.0 <= v <= 1.0 for v in rgb):
        raise click.BadParameter("expected R,G,B with each value in [0, 1], e.g. 0.5,0.5,0.5")
    return rgb


@main.command("predict")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--weights",
    "-w",
    required=True,
    type=click.Path(path_type=Path),
    help="Checkpoint (.pt/.pth/.safetensors).",
)
@out_option(
    "Folder for <scene>_pred.ply (coloured, with labels) and the --format file.",
    default="predictions",
    dest="out_dir",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ply", "txt", "npy"]),
    default="ply",
    show_default=True,
    help="Per-point label file besides the coloured PLY (txt: ScanNet benchmark format).",
)
@rotations_option
@overwrite_option("Replace existing output files in --out.")
@click.option(
    "--keep-going", is_flag=True, help="Go on after a failing scene; exit non-zero with a summary."
)
@click.option(
    "--fill-color",
    callback=_parse_color,
    default=None,
    help="Constant colour R,G,B for clouds without colour.",
)
@device_option
@precision_option()
@click.option(
    "--model", "model_name", default=None, help="Network name, for original model-zoo weights."
)
@click.option(
    "--dataset",
    type=click.Choice(["scannet", "s3dis", "synthia4d"]),
    default=None,
    help="Inference preset, for original model-zoo weights.",
)
@threads_option()
def predict_command(input_path: Path, weights: Path, out_dir: Path, fmt: str, rotations: int, overwrite: bool, keep_going: bool, fill_color, device: str, precision: str, model_name: str | None, dataset: str | None) -> None:  # fmt: skip
    """Segment INPUT (a .ply file or a folder of them) with the checkpoint WEIGHTS."""
    from stseg_models.predict_files import PredictOptions, run_predict

    opts = PredictOptions(out_dir, fmt, rotations, overwrite, keep_going, fill_color, precision)
    summary = run_predict(
        input_path, weights, opts, device=device, model_name=model_name, dataset=dataset
    )
    for outputs in summary.written.values():
        click.echo(" ".join(str(p) for p in outputs))


@main.command("install-minkowski")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Wheel cache (default ~/.cache/stseg/wheels, or $STSEG_CACHE_DIR/wheels).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel compile jobs (default: all cores).",
)
def install_minkowski_command(cache_dir: Path | None, jobs: int | None) -> None:
    """Build (once, ~15 min on 2 cores) and install MinkowskiEngine 0.5.4 (CPU) for this Python and torch."""
    from stseg_models.minkowski_build import install_minkowski

    result = install_minkowski(cache_dir=cache_dir, jobs=jobs)
    source = "cached wheel" if result.cached else "fresh build"
    click.echo(f"installed {result.wheel.name} ({source}, {result.seconds:.0f} s)")
