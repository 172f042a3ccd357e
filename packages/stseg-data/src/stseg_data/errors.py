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


class PointCloudReadError(StsegInputError):
    """A point-cloud file (PLY, text, .pt) is truncated, malformed or inconsistent."""


class DatasetFormatError(StsegInputError):
    """A dataset folder does not follow its format (missing files, mismatched counts, bad ids)."""


class SplitFileError(StsegInputError):
    """A split list has an unreadable entry or an entry escaping the dataset root."""


class PreprocessError(StsegRuntimeError):
    """Preprocessing finished, but one or more scenes failed (each is named in the summary)."""


class UnsafeFileError(StsegInputError):
    """A file that would run code when loaded (a pickle calling a function): refused, never run."""
