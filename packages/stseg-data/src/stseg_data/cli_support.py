"""Click plumbing shared by the five command lines.

`StsegGroup` is the Click group class of every stseg CLI: it adds a `--debug` flag and turns the
packages' own errors (`stseg_data.errors.StsegError`) into one line on stderr and the error's exit
code, instead of a traceback. Tracebacks appear only with `--debug`.

Usage errors (a bad option value, a missing argument) are one line too, naming the command's
`--help` instead of printing the usage block.

Two failures of the machine rather than of the input also end as one line (exit 1): an `OSError`
that escaped the library (a read-only folder, a full disk: the path and the errno are named) and
running out of memory (Python's `MemoryError`, or PyTorch's CPU/CUDA allocator failing: the size
that failed is named). The commands check what they can before long work starts; this is the net
under those checks.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from stseg_data.errors import StsegError
from stseg_data.outputs import describe_os_error, format_bytes

# PyTorch's allocators: "DefaultCPUAllocator: not enough memory: you tried to allocate 123 bytes",
# "CUDA out of memory. Tried to allocate 2.00 GiB".
_ALLOCATION_FAILED = re.compile(r"not enough memory|out of memory|can't allocate memory", re.I)
_ALLOCATION_SIZE = re.compile(r"allocate (\d+) bytes|allocate ([\d.]+ [KMGT]i?B)", re.I)


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

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            raise _one_line(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:  # a subcommand's options are parsed in here
            raise _one_line(error) from None
        except StsegError as error:
            if ctx.meta.get("stseg.debug"):
                raise
            click.echo(f"Error: {error}", err=True)
            sys.exit(error.exit_code)
        except OSError as error:
            if ctx.meta.get("stseg.debug"):
                raise
            click.echo(f"Error: {os_error_line(error)}", err=True)
            sys.exit(1)
        except (MemoryError, RuntimeError) as error:
            if ctx.meta.get("stseg.debug") or not is_out_of_memory(error):
                raise
            click.echo(f"Error: {out_of_memory_line(error)}", err=True)
            sys.exit(1)


class OneLineUsageError(click.UsageError):
    """A usage error shown as one `Error: ...` line that names the command's --help."""

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {self.format_message()}{hint}", err=file is None, file=file)


def _one_line(error: click.UsageError) -> click.UsageError:
    # NoArgsIsHelpError prints the help, which is what a bare command asks for
    if isinstance(error, (OneLineUsageError, click.exceptions.NoArgsIsHelpError)):
        return error
    return OneLineUsageError(error.format_message(), error.ctx)


def os_error_line(error: OSError) -> str:
    """ "PATH: could not write/read (Read-only file system, EROFS)" for an escaped OSError."""
    where = error.filename if error.filename is not None else "a file"
    return f"{where}: {describe_os_error(error)}"


def is_out_of_memory(error: BaseException) -> bool:
    """True for Python's MemoryError and PyTorch's allocator failures (CPU or CUDA)."""
    if isinstance(error, MemoryError):
        return True
    return bool(_ALLOCATION_FAILED.search(str(error)))


def out_of_memory_line(error: BaseException) -> str:
    """One line naming the allocation that failed, when the error says it."""
    match = _ALLOCATION_SIZE.search(str(error))
    if match and match.group(1):
        size = f" while allocating {format_bytes(int(match.group(1)))}"
    elif match:
        size = f" while allocating {match.group(2)}"
    else:
        size = ""
    return (
        f"out of memory{size}; use smaller inputs or settings (fewer --rotations, a larger "
        "voxel size, a smaller batch), or a machine with more memory"
    )


def _remember_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta["stseg.debug"] = value
