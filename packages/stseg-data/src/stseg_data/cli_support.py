"""Click plumbing shared by the five command lines.

`StsegGroup` is the Click group class of every stseg CLI: it adds a `--debug` flag and turns the
packages' own errors (`stseg_data.errors.StsegError`) into one line on stderr and the error's exit
code, instead of a traceback. Tracebacks appear only with `--debug`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from stseg_data.errors import StsegError


class StsegGroup(click.Group):
    """A Click group that reports `StsegError`s as one line and exits with their code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--debug"],
                is_flag=True,
                default=False,
                expose_value=False,
                is_eager=True,
                callback=_remember_debug,
                help="Show full tracebacks instead of one-line errors.",
            )
        )

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StsegError as error:
            if ctx.meta.get("stseg.debug"):
                raise
            click.echo(f"Error: {error}", err=True)
            sys.exit(error.exit_code)


def _remember_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta["stseg.debug"] = value
