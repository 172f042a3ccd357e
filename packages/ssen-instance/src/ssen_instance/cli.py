"""The `ssen-instance` command line: a thin Click layer over the library."""

from __future__ import annotations

import click

from ssen_instance import __version__
from stseg_data.cli_support import StsegGroup


@click.group(cls=StsegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ssen-instance")
def main() -> None:
    """ssen-instance: see `ssen-instance COMMAND --help`."""
