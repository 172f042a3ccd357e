"""Rewrap new features onto the coordinates of a SparseTensor or TensorField."""

from __future__ import annotations

from typing import Any

import torch

from stseg_models.sparse.errors import SparseInputError


def is_sparse_like(x: object) -> bool:
    """True for SparseTensor and TensorField (both expose `.F` and `_with`)."""
    from stseg_models.sparse.field import TensorField
    from stseg_models.sparse.tensor import SparseTensor

    return isinstance(x, (SparseTensor, TensorField))


def rewrap(x: Any, features: torch.Tensor) -> Any:
    """Same coordinates as `x`, new features [N, C'] (row count must not change)."""
    return x._with(features)


def require_sparse_like(x: object, layer: str) -> None:
    if not is_sparse_like(x):
        raise SparseInputError(
            f"{layer} expects a SparseTensor or TensorField, got {type(x).__name__}"
        )


def batch_index(x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(row -> position of its batch among the present batch indices [N], sorted batch ids [B])."""
    batch = x.C[:, 0].long()
    ids, inverse = torch.unique(batch, return_inverse=True)
    return inverse, ids
