"""MinkowskiEngine-compatible sparse convolution engine, the Minkowski U-Net model zoo, checkpoints and inference.

Top-level names are imported lazily, so `import stseg_models` stays cheap (no torch until used):
`build_model`, `list_models`, `describe` (the model zoo), `Segmenter` (inference),
`read_checkpoint` / `save_checkpoint` (checkpoints).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("stseg-models")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

_LAZY = {
    "build_model": "stseg_models.zoo",
    "list_models": "stseg_models.zoo",
    "describe": "stseg_models.zoo",
    "Segmenter": "stseg_models.inference",
    "read_checkpoint": "stseg_models.checkpoint",
    "save_checkpoint": "stseg_models.checkpoint",
    "InferenceSpec": "stseg_models.checkpoint",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stseg_models' has no attribute {name!r}")


__all__ = ["InferenceSpec", "Segmenter", "__version__", "build_model", "describe", "list_models", "read_checkpoint", "save_checkpoint"]  # fmt: skip
