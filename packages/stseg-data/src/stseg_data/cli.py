"""The `stseg-data` command line: a thin Click layer over the library."""

from __future__ import annotations

import click

from stseg_data import __version__
from stseg_data.cli_options import overwrite_option, resume_option, resumed_folder
from stseg_data.cli_support import StsegGroup

KINDS = click.Choice(["scannet", "s3dis", "synthia4d"])


@click.group(cls=StsegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stseg-data")
def main() -> None:
    """stseg-data: see `stseg-data COMMAND --help`."""


@main.command()
@click.argument("kind", type=KINDS)
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--scenes", default=10, show_default=True, help="Scenes (sequences for synthia4d).")
@click.option(
    "--seed", default=0, show_default=True, help="Random seed; scene i depends only on (seed, i)."
)
@click.option("--frames", default=8, show_default=True, help="Frames per synthia4d sequence.")
@click.option(
    "--spacing", type=float, default=None, help="Vertex spacing (m; cm/100 for synthia4d)."
)
@overwrite_option(
    "Replace an earlier synth output in OUT (only a folder synth wrote, never another)."
)
def synth(
    kind: str, out: str, scenes: int, seed: int, frames: int, spacing: float | None, overwrite: bool
) -> None:
    """Write synthetic scenes of KIND in the real raw format under OUT (new or empty)."""
    from stseg_data.synth import write_synthetic

    names = write_synthetic(
        kind, out, scenes, seed, frames=frames, spacing=spacing, progress=True, overwrite=overwrite
    )
    click.echo(f"wrote {len(names)} {'frames' if kind == 'synthia4d' else 'scenes'} to {out}")


@main.command()
@click.argument("kind", type=KINDS)
@click.argument("raw", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(file_okay=False), required=False)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Parallel processes.",
)
@overwrite_option("Write every scene again into a non-empty OUT.")
@resume_option
def preprocess(
    kind: str, raw: str, out: str | None, workers: int, overwrite: bool, resume: str | None
) -> None:
    """Turn a raw KIND dataset in RAW into per-scene training PLY files under OUT (new or empty).

    `--resume OUT` (OUT then need not be repeated) continues an interrupted run, keeping the
    scenes it finished.
    """
    from stseg_data.preprocess import preprocess as run

    out = resumed_folder(out, resume, "OUT")
    report = run(kind, raw, out, workers, progress=True, overwrite=overwrite, resume=bool(resume))
    click.echo(report.summary())


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def inspect(file: str) -> None:
    """Print the fields, point count, bounds and label histogram of FILE."""
    from stseg_data.inspect import describe_file

    click.echo(describe_file(file))
