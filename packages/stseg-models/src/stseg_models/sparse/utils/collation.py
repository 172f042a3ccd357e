"""Batching of per-sample coordinates, features and labels: MinkowskiEngine 0.5.4's ``utils.collation``.

The batch index becomes column 0 of the coordinates (sample ``b`` of the list gets index ``b``),
rows keep the order of the samples and, within a sample, their own order. As in MinkowskiEngine:

* coordinates come back as ``dtype`` (torch.int32 by default -- float coordinates are floored
  first -- or torch.float32) on ``device``; ``device=None`` means CPU (MinkowskiEngine 0.5.4's
  default: its "use the input's device" test looks at the list, never at a tensor, so it always
  picks CPU);
* features are concatenated with `torch.cat` where they are (``device`` applies to coordinates
  only);
* labels given as arrays / tensors are concatenated; labels of another kind (e.g. one int per
  sample, for classification) come back as the list they were.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from stseg_models.sparse.errors import SparseInputError

_LOG = logging.getLogger(__name__)
_COORD_DTYPES = (torch.int32, torch.float32)


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        return value
    raise SparseInputError(
        f"{what} must be numpy arrays or torch tensors, got {type(value).__name__}"
    )


def _check_sequence(items: Any, what: str) -> None:
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise SparseInputError(
            f"{what} must be a sequence (list or tuple), got {type(items).__name__}"
        )


def _spatial_dimension(coords: Sequence[Any]) -> int:
    if len(coords) == 0:
        raise SparseInputError("the coordinate list is empty: nothing to batch")
    dims = set()
    for i, cs in enumerate(coords):
        if getattr(cs, "ndim", None) != 2:
            raise SparseInputError(
                f"all coordinates must be 2D arrays [N, D]; item {i} has shape {getattr(cs, 'shape', None)}"
            )
        dims.add(int(cs.shape[1]))
    if len(dims) != 1:
        raise SparseInputError(f"coordinate dimensions differ between samples: {sorted(dims)}")
    return dims.pop()


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype not in _COORD_DTYPES:
        raise SparseInputError(
            f"coordinates dtype must be torch.int32 or torch.float32, got {dtype}"
        )


def _coords_tensor(cs: Any, dtype: torch.dtype) -> torch.Tensor:
    coord = _as_tensor(cs, "coordinates")
    if dtype == torch.int32 and coord.is_floating_point():
        coord = torch.floor(coord)  # floor, not truncation, so negative points stay in their cell
    return coord


def _fill(coords: Sequence[Any], dim: int, dtype: torch.dtype, device: Any) -> torch.Tensor:
    total = sum(len(cs) for cs in coords)
    out = torch.empty((total, dim + 1), dtype=dtype, device=device or "cpu")
    start = 0
    for b, cs in enumerate(coords):
        coord = _coords_tensor(cs, dtype)
        n = coord.shape[0]
        out[start : start + n, 0] = b
        out[start : start + n, 1:] = coord
        start += n
    return out


def batched_coordinates(
    coords: Sequence[np.ndarray | torch.Tensor],
    dtype: torch.dtype = torch.int32,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Stack per-sample coordinates [N_b, D] into batched coordinates [sum N_b, 1 + D].

    Column 0 is the sample's position in `coords`. With ``dtype=torch.int32`` float coordinates
    are floored; with torch.float32 they are copied as they are.
    """
    _check_sequence(coords, "coords")
    dim = _spatial_dimension(coords)
    _check_dtype(dtype)
    return _fill(coords, dim, dtype, device)


def sparse_collate(
    coords: Sequence[np.ndarray | torch.Tensor],
    feats: Sequence[np.ndarray | torch.Tensor],
    labels: Sequence[Any] | None = None,
    dtype: torch.dtype = torch.int32,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, ...] | tuple[torch.Tensor, torch.Tensor, Any]:
    """Batch per-sample ``(coords [N_b, D], feats [N_b, C], labels)`` into one batch.

    Returns ``(coordinates [N, 1 + D], features [N, C])``, plus the labels when given: concatenated
    when they are arrays or tensors, else the list itself.
    """
    _check_sequence(coords, "coords")
    _check_sequence(feats, "feats")
    dim = _spatial_dimension(coords)
    _check_dtype(dtype)
    if labels is not None:
        _check_sequence(labels, "labels")
    if len(feats) != len(coords):
        raise SparseInputError(f"{len(coords)} coordinate arrays but {len(feats)} feature arrays")
    sizes = [len(cs) for cs in coords]
    feat_sizes = [len(fs) for fs in feats]
    if sizes != feat_sizes:
        raise SparseInputError(f"coordinate rows per sample {sizes} != feature rows {feat_sizes}")
    bcoords = _fill(coords, dim, dtype, device)
    feats_batch = torch.cat([_as_tensor(f, "features") for f in feats], 0)
    if labels is None:
        return bcoords, feats_batch
    if len(labels) != len(coords):
        raise SparseInputError(f"{len(coords)} coordinate arrays but {len(labels)} label entries")
    label_list = [torch.from_numpy(lb) if isinstance(lb, np.ndarray) else lb for lb in labels]
    if label_list and isinstance(label_list[0], torch.Tensor):
        return bcoords, feats_batch, torch.cat(label_list, 0)
    return bcoords, feats_batch, label_list


def batch_sparse_collate(
    data: Sequence[Sequence[Any]],
    dtype: torch.dtype = torch.int32,
    device: str | torch.device | None = None,
) -> tuple[Any, ...]:
    """`sparse_collate` over a list of ``(coords, feats[, labels])`` samples (a DataLoader collate_fn)."""
    _check_sequence(data, "data")
    if len(data) == 0:
        raise SparseInputError("batch_sparse_collate got an empty batch")
    columns = list(zip(*data, strict=True))
    if len(columns) not in (2, 3):
        raise SparseInputError(
            f"samples must be (coords, feats) or (coords, feats, labels), got {len(columns)} fields"
        )
    labels = columns[2] if len(columns) == 3 else None
    return sparse_collate(columns[0], columns[1], labels, dtype=dtype, device=device)


class SparseCollation:
    """DataLoader ``collate_fn`` for ``(coords, feats, labels)`` samples with a point budget.

    With ``limit_numpoints > 0`` the batch is cut before the first sample that would take the total
    number of points above the limit (a warning is logged); 0 or negative = no limit. A first sample
    that alone exceeds the limit raises `SparseInputError` (MinkowskiEngine fails there with an
    IndexError on the empty batch).
    """

    def __init__(
        self,
        limit_numpoints: int = -1,
        dtype: torch.dtype = torch.int32,
        device: str | torch.device | None = None,
    ) -> None:
        self.limit_numpoints = limit_numpoints
        self.dtype = dtype
        self.device = device

    def __call__(self, list_data: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
        coords, feats, labels = list(zip(*list_data, strict=True))
        kept = len(coords)
        total = 0
        for b, cs in enumerate(coords):
            total += cs.shape[0]
            if self.limit_numpoints and self.limit_numpoints > 0 and total > self.limit_numpoints:
                kept = b
                _LOG.warning(
                    "Cannot fit %d points into %d points limit. Truncating batch size at %d out of %d with %d.",
                    sum(len(c) for c in coords),
                    self.limit_numpoints,
                    b,
                    len(coords),
                    total - cs.shape[0],
                )
                break
        if kept == 0:
            raise SparseInputError(
                f"the first sample has {coords[0].shape[0]} points, over limit_numpoints={self.limit_numpoints}"
            )
        return sparse_collate(
            list(coords[:kept]),
            list(feats[:kept]),
            list(labels[:kept]),
            dtype=self.dtype,
            device=self.device,
        )
