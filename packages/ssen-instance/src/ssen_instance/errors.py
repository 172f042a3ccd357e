"""Error types of ssen-instance (subclasses of the shared stseg errors, so the CLI exits 2 / 1)."""

from __future__ import annotations

from stseg_data.errors import StsegInputError, StsegRuntimeError


class InstanceInputError(StsegInputError):
    """Bad input to an instance-segmentation function: shapes, NaN embeddings, label ids."""


class PredictionFileError(InstanceInputError):
    """A ScanNet instance prediction file (`<scene>.txt` or a mask file) is malformed."""


class SceneFileError(InstanceInputError):
    """An SSEN `N x 9` scene file is malformed or inconsistent."""


class InstanceRuntimeError(StsegRuntimeError):
    """A valid instance-segmentation request failed while running."""
