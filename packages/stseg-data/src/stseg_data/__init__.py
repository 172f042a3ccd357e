"""Point-cloud dataset formats (ScanNet v2, S3DIS, Synthia4D, SSEN), synthetic scenes, voxelization and augmentation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stseg-data")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
