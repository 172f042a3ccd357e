"""SSEN instance segmentation: discriminative embedding loss, HDBSCAN clustering and ScanNet AP evaluation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ssen-instance")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
