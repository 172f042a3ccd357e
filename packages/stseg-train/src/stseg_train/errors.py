"""Error types of stseg-train, each mapped to an exit code by the CLI group.

Exit codes: 2 bad input or usage, 1 runtime failure, 3 the run stopped on non-finite values
(`NonFiniteError`), documented in the package README.
"""

from __future__ import annotations

from stseg_data.errors import StsegInputError, StsegRuntimeError, UnsafeFileError

EXIT_NONFINITE = 3


class TrainInputError(StsegInputError):
    """A training or evaluation request is malformed (bad config, missing data, clobbering a run)."""


class TrainRuntimeError(StsegRuntimeError):
    """Training failed while running (too many out-of-memory skips, a peer process died, ...)."""


class CheckpointError(StsegInputError):
    """A checkpoint is missing, corrupt, of another architecture or of an unknown schema."""


class NonFiniteError(StsegRuntimeError):
    """Too many consecutive non-finite losses or gradients, or a save of non-finite parameters."""

    exit_code = EXIT_NONFINITE


class UnsafeCheckpointError(CheckpointError, UnsafeFileError):
    """A checkpoint whose pickle would call code: refused, never loaded (resume falls back past it)."""
