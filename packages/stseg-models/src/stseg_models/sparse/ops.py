"""Tensor-level operations: channel concatenation and conversions."""

from __future__ import annotations

from typing import Any

import torch

from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.validation import same_manager
from stseg_models.sparse.wrap import is_sparse_like, rewrap


def cat(*tensors: Any) -> Any:
    """Concatenate the channels of sparse tensors (or fields) on the same coordinates.

    Accepts ``cat(a, b, ...)`` or ``cat([a, b, ...])``. All must share one coordinate manager and
    one coordinate set (e.g. a U-Net skip and the transposed convolution landing on it).
    """
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if not tensors:
        raise SparseInputError("cat() needs at least one tensor")
    if not all(is_sparse_like(t) for t in tensors):
        raise SparseInputError("cat() accepts only SparseTensor or TensorField arguments")
    if len({type(t) for t in tensors}) != 1:
        raise SparseInputError("cat() cannot mix SparseTensor and TensorField")
    same_manager(list(tensors), "cat")
    first = tensors[0]
    if hasattr(first, "coordinate_map_key"):
        keys = {t.coordinate_map_key for t in tensors}
        if len(keys) != 1:
            raise SparseInputError(
                f"cat(): the tensors have different coordinates ({sorted(map(str, keys))})"
            )
    elif len({t._id for t in tensors}) != 1:
        raise SparseInputError("cat(): the fields have different coordinates")
    return rewrap(first, torch.cat([t.F for t in tensors], dim=1))


def to_sparse(dense: torch.Tensor) -> Any:
    """SparseTensor of the non-zero sites of a dense [B, C, *spatial] tensor."""
    from stseg_models.sparse.tensor import SparseTensor

    if dense.dim() < 3:
        raise SparseInputError(f"to_sparse expects [B, C, *spatial], got {tuple(dense.shape)}")
    mask = (dense != 0).any(dim=1)
    coords = mask.nonzero().int()
    feats = dense.movedim(1, -1)[mask]
    return SparseTensor(feats, coords)
