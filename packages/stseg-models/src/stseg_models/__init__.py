"""MinkowskiEngine-compatible sparse convolution engine, the Minkowski U-Net model zoo, checkpoints and inference."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stseg-models")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
