"""Error types of stseg-models (model zoo, checkpoints, inference).

All derive from the shared `stseg_data.errors` types, so every stseg command line reports them as
one line with a documented exit code: 2 for bad input (a wrong file, an unknown model name), 1 for a
failure while running.
"""

from __future__ import annotations

from stseg_data.errors import StsegError, StsegInputError, StsegRuntimeError, UnsafeFileError

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointReadError",
    "PredictInputError",
    "PredictRuntimeError",
    "StsegError",
    "UnknownModelError",
    "UnsafeCheckpointError",
]


class UnknownModelError(StsegInputError):
    """A model name that is not in the registry; the message lists the known names."""


class CheckpointError(StsegInputError):
    """Base class of every problem with a checkpoint file given by the user."""


class CheckpointReadError(CheckpointError):
    """The file is missing, truncated, corrupt, or not a checkpoint at all."""


class UnsafeCheckpointError(CheckpointError, UnsafeFileError):
    """The file needs pickle code execution to load (refused: `torch.load(weights_only=True)`)."""


class CheckpointMismatchError(CheckpointError):
    """The weights do not fit the model (another architecture or class count); names the keys."""


class PredictInputError(StsegInputError):
    """A point cloud that inference cannot use (empty, no colour for a colour model, ...)."""


class PredictRuntimeError(StsegRuntimeError):
    """Inference failed on valid input (an invariant broke, the device ran out of memory)."""
