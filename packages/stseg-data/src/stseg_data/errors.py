"""Error types shared by every stseg package.

Each package raises subclasses of these, so a command line can turn any of them into one clear line
and a documented exit code (see `stseg_data.cli_support`): 2 for bad input or usage, 1 for a failure
at run time.
"""

from __future__ import annotations


class StsegError(Exception):
    """Base class of every error the stseg packages raise on purpose."""

    exit_code: int = 1


class StsegInputError(StsegError, ValueError):
    """The input (a file, an argument, an array) is malformed or inconsistent."""

    exit_code = 2


class StsegRuntimeError(StsegError, RuntimeError):
    """A valid request failed while running (disk full, a worker died, ...)."""

    exit_code = 1
