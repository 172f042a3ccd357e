"""Colour maps, coloured PLY export, PNG renders, an offline HTML viewer and metric plots for point-cloud segmentation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stseg-viz")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
