"""Training, distributed launch, exact resume and evaluation for stseg semantic segmentation models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stseg-train")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
