"""MinkowskiPruning: keep the rows of a sparse tensor where a boolean mask is True.

The kept rows stay in their input order (MinkowskiEngine 0.5.4 lists them in its hash map's
iteration order, which it does not specify: same set, other order) and form a new coordinate set
of the input's coordinate manager at the input's tensor stride, string id "pruned" as
MinkowskiEngine's; the input set is left as it is, so layers after the pruning build their
kernel maps on the smaller set.
"""

from __future__ import annotations

from typing import Any

import torch

from stseg_models.sparse.common import MinkowskiModuleBase
from stseg_models.sparse.coordinate_manager import CoordinateManager, CoordinateMapKey
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import lookup
from stseg_models.sparse.tensor import SparseTensor


def check_mask(mask: object, num_rows: int) -> torch.Tensor:
    """A boolean mask [N] (a 0/1 integer mask is accepted and converted)."""
    if not isinstance(mask, torch.Tensor):
        raise SparseInputError(
            f"the pruning mask must be a torch.Tensor, got {type(mask).__name__}"
        )
    if mask.dim() != 1 or mask.shape[0] != num_rows:
        raise SparseInputError(
            f"the pruning mask must have shape [{num_rows}], got {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        if mask.is_floating_point():
            raise SparseInputError(f"the pruning mask must be boolean, got {mask.dtype}")
        mask = mask != 0
    return mask


def prune_key(
    manager: CoordinateManager,
    in_key: CoordinateMapKey,
    mask: torch.Tensor,
    out_key: CoordinateMapKey | None = None,
) -> tuple[CoordinateMapKey, torch.Tensor]:
    """(key of the kept rows' set, kept input rows [M]); reuses `out_key` when the manager holds it."""
    coords = manager.get_coordinates(in_key)
    mask = check_mask(mask.to(coords.device), coords.shape[0])
    kept = mask.nonzero().squeeze(1)
    if out_key is not None and out_key in manager.get_coordinate_map_keys():
        rows = lookup(coords[kept].long(), manager.get_coordinates(out_key).long())
        if rows.shape[0] != manager.size(out_key) or bool(
            (rows != torch.arange(rows.shape[0], device=rows.device)).any()
        ):
            raise SparseInputError(f"coordinate set {out_key} is not the pruned set of {in_key}")
        return out_key, kept
    return manager.insert_unique(coords[kept], in_key.tensor_stride, "pruned"), kept


def _forward(ctx: Any, feats: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    ctx.save_for_backward(kept)
    ctx.num_in = feats.shape[0]
    return feats.index_select(0, kept)


def _backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:
    (kept,) = ctx.saved_tensors
    grad = grad_out.new_zeros((ctx.num_in, grad_out.shape[1]))
    grad[kept] = grad_out
    return grad


class MinkowskiPruningFunction(torch.autograd.Function):
    """apply(in_feat [N, C], mask bool [N], in_coords_key, out_coords_key=None, coords_manager) -> [M, C].

    A fresh or absent `out_coords_key` registers the pruned set (the manager's newest key); an
    unset placeholder key (``CoordinateMapKey(D + 1)``) is set to it, as in MinkowskiEngine. The
    gradient of a removed row is zero.
    """

    @staticmethod
    def forward(
        ctx: Any,
        in_feat: torch.Tensor,
        mask: torch.Tensor,
        in_coords_key: CoordinateMapKey,
        out_coords_key: CoordinateMapKey | None = None,
        coords_manager: CoordinateManager | None = None,
    ) -> torch.Tensor:
        if coords_manager is None:
            raise SparseInputError("MinkowskiPruningFunction needs the coordinate manager")
        if in_feat.shape[0] != coords_manager.size(in_coords_key):
            raise SparseInputError(
                f"features have {in_feat.shape[0]} rows but coordinate set {in_coords_key} has "
                f"{coords_manager.size(in_coords_key)}"
            )
        key, kept = prune_key(coords_manager, in_coords_key, mask, out_coords_key)
        if out_coords_key is not None and not out_coords_key.is_key_set():
            out_coords_key._assign(key)  # MinkowskiEngine fills in the caller's placeholder key
        return _forward(ctx, in_feat, kept)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        return _backward(ctx, grad_out), None, None, None, None


class _PruneRows(torch.autograd.Function):
    """The layer's path: apply(feats, kept rows) with the rows found once by the layer."""

    @staticmethod
    def forward(ctx: Any, feats: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        return _forward(ctx, feats, kept)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        return _backward(ctx, grad_out), None


class MinkowskiPruning(MinkowskiModuleBase):
    """``forward(input, mask)``: the rows of `input` where ``mask`` [N] is True, in input order."""

    def forward(self, input: SparseTensor, mask: torch.Tensor) -> SparseTensor:
        if not isinstance(input, SparseTensor):
            raise SparseInputError(
                f"MinkowskiPruning expects a SparseTensor, got {type(input).__name__}"
            )
        manager = input.coordinate_manager
        out_key, kept = prune_key(manager, input.coordinate_map_key, mask)
        feats = _PruneRows.apply(input.F, kept)
        return SparseTensor(feats, coordinate_map_key=out_key, coordinate_manager=manager)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
