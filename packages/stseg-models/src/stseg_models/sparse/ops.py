"""MinkowskiOps: conversions between dense tensors, sparse tensors and features; reductions.

This module is also exported as ``MinkowskiOps`` (``ME.MinkowskiOps.to_sparse(...)``), so it holds
every name of MinkowskiEngine 0.5.4's ``MinkowskiOps`` module: `MinkowskiLinear`, `cat`, `sum`
(MinkowskiEngine's `_sum`), `mean`, `var`, the `MinkowskiStack*` containers (see `stack`),
`to_sparse`, `to_sparse_all`, `dense_coordinates`, `MinkowskiToSparseTensor`,
`MinkowskiToDenseTensor` and `MinkowskiToFeature`.

Row order of the conversions (MinkowskiEngine's): `to_sparse` lists the non-zero sites in
row-major order of (batch, x1, ..., xD); `to_sparse_all` and `dense_coordinates` list every site
in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from stseg_models.sparse.common import MinkowskiModuleBase
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.field import TensorField
from stseg_models.sparse.nonlinearity import MinkowskiLinear
from stseg_models.sparse.stack import (
    MinkowskiStackCat,
    MinkowskiStackMean,
    MinkowskiStackSum,
    MinkowskiStackVar,
    _sum,
    cat,
    mean,
    sum,  # MinkowskiEngine's name (shadows the builtin here)
    var,
)
from stseg_models.sparse.tensor import SparseTensor
from stseg_models.sparse.wrap import is_sparse_like

__all__ = [
    "MinkowskiLinear", "MinkowskiStackCat", "MinkowskiStackMean", "MinkowskiStackSum",
    "MinkowskiStackVar", "MinkowskiToDenseTensor", "MinkowskiToFeature", "MinkowskiToSparseTensor",
    "_sum", "cat", "dense_coordinates", "mean", "sum", "to_sparse", "to_sparse_all", "var",
]  # fmt: skip


def _check_dense(x: object, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise SparseInputError(f"{what} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3:
        raise SparseInputError(
            f"{what} expects a batched tensor with at least one spatial axis, got shape {tuple(x.shape)}"
        )
    return x


def to_sparse(
    x: torch.Tensor,
    format: str | None = None,
    coordinates: Any = None,
    device: torch.device | str | None = None,
) -> Any:
    """SparseTensor of the sites of a dense tensor where some channel is non-zero.

    `format` names the axes: one ``B`` (first), one ``C``, ``X`` for each spatial axis; default
    ``"BCX...X"``. `coordinates` is accepted and ignored, as in MinkowskiEngine.
    """
    x = _check_dense(x, "to_sparse")
    fmt = format if format is not None else "BC" + "X" * (x.dim() - 2)
    if (
        len(fmt) != x.dim()
        or fmt[0] != "B"
        or fmt.count("B") != 1
        or fmt.count("C") != 1
        or set(fmt) - {"B", "C", "X"}
    ):
        raise SparseInputError(
            f"invalid format {fmt!r} for a {x.dim()}D tensor: 'B' first, one 'C', 'X' for the rest"
        )
    channels_last = x.movedim(fmt.index("C"), -1)
    mask = (channels_last != 0).any(dim=-1)
    coords = mask.nonzero().int()
    return SparseTensor(channels_last[mask], coords, device=device)


def dense_coordinates(shape: Sequence[int] | torch.Size) -> torch.Tensor:
    """int32 [B * D1 * ... * DN, 1 + N]: every (batch, x1, ..., xN) of a [B, C, D1, ..., DN] shape."""
    size = [int(s) for s in shape]
    if len(size) < 3:
        raise SparseInputError(
            f"dense_coordinates expects [B, C, D1, ...], got a shape of length {len(size)}"
        )
    axes = [torch.arange(n, dtype=torch.int32) for n in (size[0], *size[2:])]
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


def to_sparse_all(dense_tensor: torch.Tensor, coordinates: torch.Tensor | None = None) -> Any:
    """SparseTensor with a row for every site of a [B, C, D1, ..., DN] tensor (differentiable).

    `coordinates` (from `dense_coordinates(dense_tensor.shape)`) can be cached by the caller.
    """
    x = _check_dense(dense_tensor, "to_sparse_all")
    if coordinates is None:
        coordinates = dense_coordinates(x.shape)
    feats = x.movedim(1, -1).reshape(-1, x.shape[1])
    return SparseTensor(feats, coordinates.to(x.device), device=x.device)


class MinkowskiToSparseTensor(MinkowskiModuleBase):
    """Dense [B, C, *spatial] tensor or TensorField -> SparseTensor.

    ``remove_zeros=True`` keeps the non-zero sites (`to_sparse`); ``remove_zeros=False`` keeps
    every site (`to_sparse_all`, with the optional cached `coordinates`). MinkowskiEngine 0.5.4's
    constructor rejects ``remove_zeros=False`` by a faulty assertion; here it works as documented.
    """

    def __init__(self, remove_zeros: bool = True, coordinates: torch.Tensor | None = None) -> None:
        super().__init__()
        if remove_zeros and coordinates is not None:
            raise SparseInputError(
                "the coordinates argument needs remove_zeros=False (all sites are kept then)"
            )
        self.remove_zeros = remove_zeros
        self.coordinates = coordinates

    def forward(self, input: Any) -> Any:
        if isinstance(input, TensorField):
            return input.sparse()
        if isinstance(input, torch.Tensor):
            if self.remove_zeros:
                return to_sparse(input)
            return to_sparse_all(input, self.coordinates)
        raise SparseInputError(
            f"MinkowskiToSparseTensor accepts a TensorField or a torch.Tensor, got {type(input).__name__}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MinkowskiToDenseTensor(MinkowskiModuleBase):
    """SparseTensor -> dense [B, C, *spatial] tensor (`SparseTensor.dense`, optional fixed `shape`)."""

    def __init__(self, shape: torch.Size | None = None) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, input: Any) -> torch.Tensor:
        if not isinstance(input, SparseTensor):
            raise SparseInputError(
                f"MinkowskiToDenseTensor expects a SparseTensor, got {type(input).__name__}"
            )
        dense, _, _ = input.dense(shape=self.shape)
        return dense

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MinkowskiToFeature(MinkowskiModuleBase):
    """SparseTensor or TensorField -> its feature matrix [N, C] (e.g. before an ``nn.Linear``)."""

    def forward(self, x: Any) -> torch.Tensor:
        if not is_sparse_like(x):
            raise SparseInputError(
                f"MinkowskiToFeature expects a SparseTensor or TensorField, got {type(x).__name__}"
            )
        return x.F
