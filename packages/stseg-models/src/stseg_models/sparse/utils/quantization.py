"""Voxelization and coordinate hashing: MinkowskiEngine 0.5.4's ``utils.quantization``.

`sparse_quantize` floors (optionally scaled) coordinates to integers and keeps one row per distinct
coordinate, *the first occurrence*, with the unique rows in the order in which they first appear --
what MinkowskiEngine 0.5.4's CPU coordinate map does (its CUDA map returns the rows in an arbitrary
order; the native engine keeps first-occurrence order on every device). Labels and features are
taken from the kept row: as in MinkowskiEngine 0.5.4, ``ignore_label`` is accepted but no label
vote happens (0.4's "disagreeing voxel -> ignore_label" rule was removed there; stseg-data's
`voxelize` implements that rule for the training data).

Return values, in this order, each present only when asked for:

=================  ==========================================================================
coordinates        int32 torch tensor [M, D] on ``device`` (also for numpy input)
features           ``features[unique_map]``, same container and dtype as given
labels             ``labels[unique_map]``, same container and dtype as given
unique_map         int64 torch tensor [M] (``return_index``): rows kept
inverse_map        int64 torch tensor [N] (``return_inverse``): ``unique[inverse_map]`` is every row
=================  ==========================================================================

``return_maps_only`` returns ``unique_map`` (and ``inverse_map`` with ``return_inverse``) only; a
lone value is returned bare, several as a tuple.

The coordinates may or may not carry a batch column: every column takes part in the uniqueness
test either way (MinkowskiEngine treats column 0 as the batch index, which gives the same result).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from stseg_models.sparse.common import convert_to_int_list
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import unique_rows

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)


def _as_2d_numpy(arr: Any, name: str) -> np.ndarray:
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    if not isinstance(arr, np.ndarray) or arr.ndim != 2:
        raise SparseInputError(
            f"{name} expects a 2D array [N, D], got {getattr(arr, 'shape', arr)!r}"
        )
    return arr


def fnv_hash_vec(arr: np.ndarray) -> np.ndarray:
    """64-bit FNV hash of each row of an [N, D] array -> uint64 [N].

    MinkowskiEngine's variant (named FNV64-1A there, but multiply-then-xor, i.e. FNV-1 order): per
    column, ``h = (h * prime) ^ uint64(x)`` from the FNV offset basis, with uint64 wrap-around.
    Negative values wrap to their two's complement, as numpy's ``astype(uint64)`` does.
    """
    values = _as_2d_numpy(arr, "fnv_hash_vec").astype(np.uint64)
    hashed = np.full(values.shape[0], _FNV_OFFSET, dtype=np.uint64)
    for column in values.T:
        hashed = np.bitwise_xor(hashed * _FNV_PRIME, column)
    return hashed


def ravel_hash_vec(arr: np.ndarray) -> np.ndarray:
    """Mixed-radix index of each row of an [N, D] array within its bounding box -> uint64 [N].

    ``a = arr - arr.min(0)``; the key is ``a[:, 0]`` in base ``max(a[:, 1]) + 1`` ... with the last
    column least significant (C order, the same radix as `hashing.make_box`), computed in uint64
    with wrap-around as MinkowskiEngine does. Distinct rows get distinct keys while the box has
    fewer than 2**64 cells.
    """
    values = _as_2d_numpy(arr, "ravel_hash_vec")
    shifted = (values - values.min(axis=0)).astype(np.uint64)
    radix = shifted.max(axis=0).astype(np.uint64) + np.uint64(1)
    keys = np.zeros(shifted.shape[0], dtype=np.uint64)
    for j in range(shifted.shape[1]):
        # Horner: keys = (...(a0 * r1 + a1) * r2 + a2 ...)
        keys = keys * radix[j] + shifted[:, j] if j else shifted[:, 0].copy()
    return keys


def _is_scalar(value: Any) -> bool:
    if isinstance(value, (str, bytes)):
        return False
    return bool(np.isscalar(value)) or (isinstance(value, torch.Tensor) and value.dim() == 0)


def discretize(coordinates: np.ndarray | torch.Tensor, quantization_size: Any) -> torch.Tensor:
    """``floor(coordinates / quantization_size)`` as an int32 torch tensor [N, D] (CPU for numpy).

    `quantization_size` is None (only floor), a scalar, or one value per column. The division is
    done as MinkowskiEngine does it, so values on a cell border land in the same cell: numpy input
    divides in float64, torch input by a float32 per-column tensor or by the Python scalar.
    """
    dim = coordinates.shape[1]
    scaled: np.ndarray | torch.Tensor = coordinates
    if quantization_size is not None:
        if _is_scalar(quantization_size):
            size = float(quantization_size)
            if size <= 0:
                raise SparseInputError(f"quantization_size must be positive, got {size}")
            if size != 1:
                scaled = coordinates / size
        elif isinstance(quantization_size, (Sequence, np.ndarray, torch.Tensor)) and not isinstance(
            quantization_size, str
        ):
            sizes = [float(v) for v in quantization_size]
            if len(sizes) != dim:
                raise SparseInputError(
                    f"quantization_size has {len(sizes)} values but the coordinates have {dim} columns"
                )
            if min(sizes) <= 0:
                raise SparseInputError(f"quantization_size must be positive, got {sizes}")
            if isinstance(coordinates, np.ndarray):
                scaled = coordinates / np.array(sizes)
            else:
                scaled = coordinates / torch.tensor(sizes, device=coordinates.device)
        else:
            raise SparseInputError(
                f"quantization_size must be a number or a sequence, got {type(quantization_size).__name__}"
            )
    if isinstance(scaled, np.ndarray):
        if not np.isfinite(scaled).all():
            raise SparseInputError("coordinates contain NaN or infinite values")
        return torch.from_numpy(np.floor(scaled).astype(np.int32))
    if scaled.is_floating_point():
        if not bool(torch.isfinite(scaled).all()):
            raise SparseInputError("coordinates contain NaN or infinite values")
        scaled = torch.floor(scaled)
    return scaled.int()


def _device(device: Any) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise SparseInputError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return dev


def _take(values: Any, rows: torch.Tensor) -> Any:
    """``values[rows]`` keeping the container (numpy stays numpy, a tensor stays on its device)."""
    if isinstance(values, np.ndarray):
        return values[rows.cpu().numpy()]
    return values[rows.to(values.device)]


def _check_inputs(coordinates: Any, features: Any, labels: Any) -> Any:
    if not isinstance(coordinates, (np.ndarray, torch.Tensor)):
        raise SparseInputError(
            f"coordinates must be a numpy array or a torch tensor, got {type(coordinates).__name__}"
        )
    if coordinates.ndim != 2:
        raise SparseInputError(
            f"coordinates must be a 2D matrix [N, D], got shape {tuple(coordinates.shape)}"
        )
    n = coordinates.shape[0]
    if features is not None:
        if not isinstance(features, (np.ndarray, torch.Tensor)) or features.ndim != 2:
            raise SparseInputError(
                f"features must be a 2D array or tensor [N, C], got {getattr(features, 'shape', type(features))}"
            )
        if features.shape[0] != n:
            raise SparseInputError(f"features have {features.shape[0]} rows, coordinates {n}")
    if labels is not None:
        if not isinstance(labels, (np.ndarray, torch.Tensor)):
            labels = np.asarray(labels)
        if len(labels) != n:
            raise SparseInputError(f"labels have {len(labels)} entries, coordinates {n} rows")
    return labels


def sparse_quantize(
    coordinates: np.ndarray | torch.Tensor,
    features: np.ndarray | torch.Tensor | None = None,
    labels: np.ndarray | torch.Tensor | None = None,
    ignore_label: int = -100,
    return_index: bool = False,
    return_inverse: bool = False,
    return_maps_only: bool = False,
    quantization_size: float | Sequence[float] | np.ndarray | torch.Tensor | None = None,
    device: str | torch.device = "cpu",
) -> Any:
    """Voxelize points: one row per distinct ``floor(coordinates / quantization_size)``.

    Args:
        coordinates: [N, D] numpy array or torch tensor, float or int (with or without a batch
            column).
        features: optional [N, C] array or tensor, gathered at the kept rows.
        labels: optional [N] array or tensor, gathered at the kept rows.
        ignore_label: accepted for MinkowskiEngine compatibility; unused, as in MinkowskiEngine
            0.5.4 (a voxel takes the label of its kept row).
        return_index: also return ``unique_map`` [M] (int64).
        return_inverse: also return ``inverse_map`` [N] (int64); needs ``return_index``.
        return_maps_only: return only the map(s), not coordinates / features / labels.
        quantization_size: cell size, a scalar or one value per column; None = only floor.
        device: where the coordinates and maps are computed and returned ('cpu' or 'cuda').

    Returns:
        See the module docstring for which values come back and in which order.
    """
    del ignore_label  # documented as unused, exactly as MinkowskiEngine 0.5.4
    labels = _check_inputs(coordinates, features, labels)
    if return_inverse and not return_index:
        raise SparseInputError("return_inverse=True needs return_index=True (MinkowskiEngine rule)")
    dev = _device(device)
    discrete = discretize(coordinates, quantization_size).to(dev)
    unique_map, inverse_map = unique_rows(discrete)
    if return_maps_only:
        return (unique_map, inverse_map) if return_inverse else unique_map
    outputs: list[Any] = [discrete[unique_map]]
    if features is not None:
        outputs.append(_take(features, unique_map))
    if labels is not None:
        outputs.append(_take(labels, unique_map))
    if return_index:
        outputs.append(unique_map)
    if return_inverse:
        outputs.append(inverse_map)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def unique_coordinate_map(
    coordinates: torch.Tensor, tensor_stride: int | Sequence[int] | np.ndarray = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(unique_map [M], inverse_map [N])`` (int64) of integer coordinates [N, 1 + D].

    ``coordinates[unique_map]`` are the distinct rows at their first occurrence, in order of first
    occurrence; ``coordinates[unique_map][inverse_map] == coordinates``. `tensor_stride` (one
    value or D values, each >= 1) is checked as MinkowskiEngine checks it; it does not change the
    result.
    """
    if not isinstance(coordinates, torch.Tensor) or coordinates.ndim != 2:
        raise SparseInputError(
            f"coordinates must be a 2D torch tensor [N, 1 + D], got {getattr(coordinates, 'shape', type(coordinates))}"
        )
    if coordinates.is_floating_point() or coordinates.dtype == torch.bool:
        raise SparseInputError(f"coordinates must be an integer tensor, got {coordinates.dtype}")
    stride = convert_to_int_list(tensor_stride, coordinates.shape[1] - 1)
    if any(int(s) < 1 for s in stride):
        raise SparseInputError(f"tensor_stride must be >= 1 on every axis, got {stride}")
    return unique_rows(coordinates)
