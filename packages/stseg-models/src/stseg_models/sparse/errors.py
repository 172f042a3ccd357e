"""Exceptions of the sparse engine.

Every check on user input happens before any computation and raises `SparseInputError` (a
`ValueError`, exit code 2 on the command line) with a message naming the offending argument.
"""

from __future__ import annotations

from stseg_data.errors import StsegInputError, StsegRuntimeError


class SparseInputError(StsegInputError):
    """Malformed sparse input: bad coordinates, shape mismatch, unsupported kernel, mixed managers."""


class SparseBackendError(StsegRuntimeError):
    """A requested sparse backend (e.g. MinkowskiEngine) is not available in this environment."""


class MinkowskiBuildError(StsegRuntimeError):
    """Building or installing MinkowskiEngine from source failed (the message says at which step)."""
