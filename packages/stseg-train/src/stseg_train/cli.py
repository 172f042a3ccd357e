"""The `stseg-train` command line: a thin Click layer over the library."""

from __future__ import annotations

import click

from stseg_data.cli_support import StsegGroup
from stseg_train import __version__


@click.group(cls=StsegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stseg-train")
def main() -> None:
    """stseg-train: see `stseg-train COMMAND --help`."""
