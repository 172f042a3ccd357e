"""The `stseg-viz` command line: a thin Click layer over the library."""

from __future__ import annotations

import click

from stseg_data.cli_support import StsegGroup
from stseg_viz import __version__


@click.group(cls=StsegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stseg-viz")
def main() -> None:
    """stseg-viz: see `stseg-viz COMMAND --help`."""
