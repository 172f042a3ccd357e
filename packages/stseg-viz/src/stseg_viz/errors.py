"""Errors raised by stseg-viz; all are `stseg_data.errors` subclasses, so the CLI maps them to exit codes."""

from __future__ import annotations

from stseg_data.errors import StsegInputError


class VizInputError(StsegInputError):
    """A scene, labels file, metrics file or run log given to stseg-viz is unusable (exit code 2)."""


class LabelFileError(VizInputError):
    """A labels file cannot be read, or does not fit the scene it is meant for."""


class PaletteError(VizInputError):
    """Label ids fall outside the chosen palette, or the palette name is unknown."""
