"""Input checks shared by tensors and layers; each raises `SparseInputError` naming the problem."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import SMALL_ROWS


def as_tensor(value: object, name: str) -> torch.Tensor:
    """Accept a torch tensor or a numpy array; anything else is an error."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise SparseInputError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def check_features(features: object) -> torch.Tensor:
    """Features must be a 2D tensor [N, C]."""
    feats = as_tensor(features, "features")
    if feats.dim() != 2:
        raise SparseInputError(f"features must be 2D [N, C], got shape {tuple(feats.shape)}")
    return feats


# MinkowskiEngine 0.5.4's SparseTensor warning, word for word, for code that filters on it
FLOAT_COORDINATES_WARNING = (
    "coordinates implicitly converted to torch.IntTensor. To remove this warning, use `.int()` "
    "to convert the coords into an torch.IntTensor"
)
INT32_MAX = 2**31 - 1


def floor_float_coordinates(coordinates: Any) -> Any:
    """Floating-point coordinates floored to int32 with MinkowskiEngine's warning; others as given.

    MinkowskiEngine 0.5.4's ``SparseTensor`` floors any coordinates that are not an int32 tensor
    (batch column included) and warns. Only floating-point ones are converted here (other integer
    types keep their values and are accepted without a warning); NaN, infinite and out-of-int32
    values, which MinkowskiEngine casts to garbage, are an error.
    """
    if not (isinstance(coordinates, (torch.Tensor, np.ndarray)) and _is_float(coordinates)):
        return coordinates
    coords = as_tensor(coordinates, "coordinates")
    if not bool(torch.isfinite(coords).all()):
        raise SparseInputError(
            "coordinates contain NaN or infinite values (float coordinates are floored to voxels)"
        )
    floored = torch.floor(coords)
    if floored.numel() and float(floored.abs().max()) > INT32_MAX:
        raise SparseInputError("float coordinates floor to values outside the int32 range")
    warnings.warn(FLOAT_COORDINATES_WARNING, UserWarning, stacklevel=3)
    return floored.int()


def _is_float(value: torch.Tensor | np.ndarray) -> bool:
    if isinstance(value, torch.Tensor):
        return value.is_floating_point()
    return bool(np.issubdtype(value.dtype, np.floating))


def check_coordinates(coordinates: object, dimension: int | None, num_rows: int) -> torch.Tensor:
    """Integer coordinates [N, 1+D], batch index first and non-negative, one row per feature row."""
    coords = as_tensor(coordinates, "coordinates")
    if coords.dim() != 2:
        raise SparseInputError(f"coordinates must be 2D [N, 1+D], got shape {tuple(coords.shape)}")
    if coords.is_floating_point() or coords.is_complex() or coords.dtype == torch.bool:
        raise SparseInputError(
            f"coordinates must be an integer tensor (got {coords.dtype}); quantize points first "
            "(e.g. torch.floor(xyz / voxel_size).int()) or use TensorField for continuous points"
        )
    width = coords.shape[1]
    if dimension is not None and width != dimension + 1:
        raise SparseInputError(
            f"coordinates must have 1 + D = {dimension + 1} columns (batch index first), got {width}"
        )
    if width < 2:
        raise SparseInputError(
            f"coordinates need a batch column and at least one spatial column, got {width}"
        )
    if coords.shape[0] != num_rows:
        raise SparseInputError(
            f"features have {num_rows} rows but coordinates have {coords.shape[0]}"
        )
    if coords.shape[0] > 0 and _lowest_batch_index(coords) < 0:
        raise SparseInputError("batch indices (coordinates[:, 0]) must be non-negative")
    return coords


def _lowest_batch_index(coords: torch.Tensor) -> int:
    """``coords[:, 0].min()`` (N >= 1); a few CPU rows through ``tolist``, which skips three tensor
    operations' dispatch (a tenth of a tiny SparseTensor's creation)."""
    if coords.shape[0] <= SMALL_ROWS and coords.device.type == "cpu":
        return min(row[0] for row in coords.tolist())
    return int(coords[:, 0].min())


def check_float_coordinates(
    coordinates: object, dimension: int | None, num_rows: int
) -> torch.Tensor:
    """Continuous coordinates [N, 1+D] for a TensorField (integers allowed), finite, batch >= 0."""
    coords = as_tensor(coordinates, "coordinates")
    if coords.dim() != 2:
        raise SparseInputError(f"coordinates must be 2D [N, 1+D], got shape {tuple(coords.shape)}")
    if dimension is not None and coords.shape[1] != dimension + 1:
        raise SparseInputError(
            f"coordinates must have 1 + D = {dimension + 1} columns (batch index first), got {coords.shape[1]}"
        )
    if coords.shape[1] < 2:
        raise SparseInputError("coordinates need a batch column and at least one spatial column")
    if coords.shape[0] != num_rows:
        raise SparseInputError(
            f"features have {num_rows} rows but coordinates have {coords.shape[0]}"
        )
    if coords.is_floating_point() and not bool(torch.isfinite(coords).all()):
        raise SparseInputError("coordinates contain NaN or infinite values")
    if coords.shape[0] > 0:
        batch = coords[:, 0]
        if float(batch.min()) < 0 or (
            coords.is_floating_point() and not bool((batch == batch.floor()).all())
        ):
            raise SparseInputError(
                "batch indices (coordinates[:, 0]) must be non-negative integers"
            )
    return coords


def check_channels(actual: int, expected: int, layer: str) -> None:
    if actual != expected:
        raise SparseInputError(
            f"{layer} expects {expected} input channels, got features with {actual}"
        )


def check_dimension(actual: int, expected: int, layer: str) -> None:
    if actual != expected:
        raise SparseInputError(
            f"{layer} is {expected}-dimensional but the input tensor is {actual}-dimensional"
        )


def same_manager(tensors: list, what: str) -> None:
    """All sparse tensors must share one coordinate manager."""
    first = tensors[0].coordinate_manager
    if any(t.coordinate_manager is not first for t in tensors[1:]):
        raise SparseInputError(
            f"{what}: the sparse tensors come from different coordinate managers"
        )
