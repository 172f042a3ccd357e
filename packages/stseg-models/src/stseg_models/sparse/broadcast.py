"""Broadcasting one row per scene (e.g. a global pooling's output) back onto every row of a scene.

``MinkowskiBroadcastAddition`` / ``Multiplication``: ``y_u = x_u (+ or *) g_b(u)``;
``MinkowskiBroadcast``: ``y_u = g_b(u)``; ``MinkowskiBroadcastConcatenation``: ``y_u = [x_u, g_b(u)]``,
where ``g_b`` is the row of the second (global) tensor whose batch index is that of row u. Output
coordinates are the first input's, row for row.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stseg_models.sparse.common import MinkowskiModuleBase
from stseg_models.sparse.coordinate_manager import CoordinateManager, CoordinateMapKey
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import lookup
from stseg_models.sparse.modes import BroadcastMode
from stseg_models.sparse.tensor import SparseTensor
from stseg_models.sparse.validation import same_manager


def origin_rows(
    manager: CoordinateManager, in_key: CoordinateMapKey, glob_key: CoordinateMapKey
) -> torch.Tensor:
    """int64 [N_in]: the row of `glob_key`'s set holding the batch index of each row of `in_key`'s set."""
    batch = manager.get_coordinates(in_key)[:, :1].long()
    glob_batch = manager.get_coordinates(glob_key)[:, :1].long()
    if torch.unique(glob_batch).numel() != glob_batch.shape[0]:
        raise SparseInputError(
            f"the global tensor ({glob_key}) must have one row per batch index to broadcast"
        )
    rows = lookup(batch, glob_batch)
    if bool((rows < 0).any()):
        missing = sorted(set(batch[rows < 0, 0].tolist()))
        raise SparseInputError(f"the global tensor has no row for batch indices {missing}")
    return rows


def _check_rows(feats: torch.Tensor, manager: CoordinateManager, key: CoordinateMapKey) -> None:
    if feats.shape[0] != manager.size(key):
        raise SparseInputError(
            f"features have {feats.shape[0]} rows but coordinate set {key} has {manager.size(key)}"
        )


class MinkowskiBroadcastFunction(torch.autograd.Function):
    """apply(input_features [N, C], input_features_global [B, C], operation_type, in_coords_key,
    glob_coords_key, coords_manager) -> [N, C] (``x + g`` or ``x * g`` per scene)."""

    @staticmethod
    def forward(
        ctx: Any,
        input_features: torch.Tensor,
        input_features_global: torch.Tensor,
        operation_type: BroadcastMode,
        in_coords_key: CoordinateMapKey,
        glob_coords_key: CoordinateMapKey,
        coords_manager: CoordinateManager,
    ) -> torch.Tensor:
        mode = BroadcastMode(int(operation_type))
        _check_rows(input_features, coords_manager, in_coords_key)
        _check_rows(input_features_global, coords_manager, glob_coords_key)
        if input_features.shape[1] != input_features_global.shape[1]:
            raise SparseInputError(
                f"broadcast needs equal channel counts, got {input_features.shape[1]} and "
                f"{input_features_global.shape[1]}"
            )
        rows = origin_rows(coords_manager, in_coords_key, glob_coords_key)
        ctx.mode, ctx.num_glob = mode, input_features_global.shape[0]
        ctx.save_for_backward(input_features, input_features_global, rows)
        spread = input_features_global.index_select(0, rows)
        if mode == BroadcastMode.ELEMENTWISE_ADDITON:
            return input_features + spread
        return input_features * spread

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        feats, glob, rows = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        if ctx.mode == BroadcastMode.ELEMENTWISE_ADDITON:
            grad_in, per_row = grad_out, grad_out
        else:
            grad_in, per_row = grad_out * glob.index_select(0, rows), grad_out * feats
        grad_glob = grad_out.new_zeros((ctx.num_glob, grad_out.shape[1])).index_add_(
            0, rows, per_row
        )
        return grad_in, grad_glob, None, None, None, None


def _check_pair(layer: nn.Module, input: Any, input_glob: Any) -> None:
    if not isinstance(input, SparseTensor) or not isinstance(input_glob, SparseTensor):
        raise SparseInputError(f"{type(layer).__name__} expects two SparseTensors")
    same_manager([input, input_glob], type(layer).__name__)


class MinkowskiBroadcastBase(MinkowskiModuleBase):
    """Elementwise op between each row and its scene's global row (`operation_type`)."""

    def __init__(self, operation_type: BroadcastMode) -> None:
        super().__init__()
        self.operation_type = BroadcastMode(operation_type)

    def forward(self, input: SparseTensor, input_glob: SparseTensor) -> SparseTensor:
        _check_pair(self, input, input_glob)
        out = MinkowskiBroadcastFunction.apply(
            input.F,
            input_glob.F,
            self.operation_type,
            input.coordinate_map_key,
            input_glob.coordinate_map_key,
            input.coordinate_manager,
        )
        return input._with(out)

    def __repr__(self) -> str:
        return type(self).__name__


class MinkowskiBroadcastAddition(MinkowskiBroadcastBase):
    """``y_u = x_u + g_b(u)`` on the coordinates of the first input."""

    def __init__(self) -> None:
        super().__init__(BroadcastMode.ELEMENTWISE_ADDITON)


class MinkowskiBroadcastMultiplication(MinkowskiBroadcastBase):
    """``y_u = x_u * g_b(u)`` (elementwise) on the coordinates of the first input."""

    def __init__(self) -> None:
        super().__init__(BroadcastMode.ELEMENTWISE_MULTIPLICATION)


class MinkowskiBroadcast(nn.Module):
    """``y_u = g_b(u)``: the first input only supplies the coordinates."""

    def _spread(self, input: SparseTensor, input_glob: SparseTensor) -> torch.Tensor:
        _check_pair(self, input, input_glob)
        manager = input.coordinate_manager
        rows = origin_rows(manager, input.coordinate_map_key, input_glob.coordinate_map_key)
        return input_glob.F.index_select(0, rows)

    def forward(self, input: SparseTensor, input_glob: SparseTensor) -> SparseTensor:
        return input._with(self._spread(input, input_glob))

    def __repr__(self) -> str:
        return type(self).__name__


class MinkowskiBroadcastConcatenation(MinkowskiBroadcast):
    """``y_u = [x_u, g_b(u)]`` (channels C + C_glob)."""

    def forward(self, input: SparseTensor, input_glob: SparseTensor) -> SparseTensor:
        return input._with(torch.cat([input.F, self._spread(input, input_glob)], dim=1))
