"""MinkowskiUnion: one sparse tensor on the union of several coordinate sets, overlaps summed.

Output rows follow the order of first occurrence over the inputs taken in turn (every row of the
first input in its order, then the new rows of the second, ...). MinkowskiEngine 0.5.4 lists
them in its hash map's iteration order, which it does not specify (same set, other order). The
union set is registered in the inputs' coordinate manager at their tensor stride, with string id
"merge" as MinkowskiEngine's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from stseg_models.sparse.coordinate_manager import CoordinateManager, CoordinateMapKey
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import lookup, unique_rows
from stseg_models.sparse.tensor import SparseTensor
from stseg_models.sparse.validation import same_manager


def union_maps(
    manager: CoordinateManager,
    in_keys: Sequence[CoordinateMapKey],
    out_key: CoordinateMapKey | None = None,
) -> tuple[CoordinateMapKey, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Key of the union of the sets `in_keys` and, per input, (its rows [N_i], their union rows [N_i]).

    With `out_key` an existing set of `manager`, maps onto it (every input row must be in it);
    otherwise the union is computed and inserted.
    """
    if len(in_keys) < 2:
        raise SparseInputError(f"a union needs at least 2 coordinate sets, got {len(in_keys)}")
    strides = {k.tensor_stride for k in in_keys}
    if len(strides) != 1:
        raise SparseInputError(f"a union needs one tensor stride, got {sorted(strides)}")
    coords = [manager.get_coordinates(k) for k in in_keys]
    both = torch.cat(coords).long()
    if out_key is not None and out_key in manager.get_coordinate_map_keys():
        target = lookup(both, manager.get_coordinates(out_key).long())
        if bool((target < 0).any()):
            raise SparseInputError(f"coordinate set {out_key} does not contain every input row")
    else:
        unique_index, target = unique_rows(both)
        out_key = manager.insert_unique(both[unique_index], next(iter(strides)), "merge")
    maps, start = [], 0
    for c in coords:
        n = c.shape[0]
        rows = torch.arange(n, device=c.device)
        maps.append((rows, target[start : start + n]))
        start += n
    return out_key, maps


Maps = list[tuple[torch.Tensor, torch.Tensor]]


def _check_feats(
    manager: CoordinateManager, keys: Sequence[CoordinateMapKey], feats: Sequence[torch.Tensor]
) -> None:
    if len(feats) != len(keys):
        raise SparseInputError(f"{len(feats)} feature tensors for {len(keys)} coordinate keys")
    channels = {f.shape[1] for f in feats}
    if len(channels) != 1:
        raise SparseInputError(f"a union needs one channel count, got {sorted(channels)}")
    for f, k in zip(feats, keys, strict=True):
        if f.shape[0] != manager.size(k):
            raise SparseInputError(
                f"features have {f.shape[0]} rows but coordinate set {k} has {manager.size(k)}"
            )


def _union_forward(
    ctx: Any, maps: Maps, num_out: int, feats: Sequence[torch.Tensor]
) -> torch.Tensor:
    """out [num_out, C]: sum of every input row landing on each union row."""
    out = feats[0].new_zeros((num_out, feats[0].shape[1]))
    for f, (rows, target) in zip(feats, maps, strict=True):
        out.index_add_(0, target, f[rows])
    ctx.maps, ctx.sizes = maps, [f.shape[0] for f in feats]
    return out


def _union_backward(ctx: Any, grad_out: torch.Tensor) -> list[torch.Tensor]:
    """Each input row receives the gradient of the union row at its coordinate."""
    grads = []
    for n, (rows, target) in zip(ctx.sizes, ctx.maps, strict=True):
        g = grad_out.new_zeros((n, grad_out.shape[1]))
        g[rows] = grad_out[target]
        grads.append(g)
    return grads


class MinkowskiUnionFunction(torch.autograd.Function):
    """apply(in_coords_keys, out_coords_key, coordinate_manager, *in_feats [N_i, C]) -> [N_union, C].

    ``out_coords_key=None`` (or a key the manager does not hold: MinkowskiEngine code passes a
    fresh key there) computes and registers the union, which is then the manager's newest key
    (``coordinate_manager.get_coordinate_map_keys()[-1]``); an unset placeholder key
    (``CoordinateMapKey(D + 1)``) is set to it, as in MinkowskiEngine.
    """

    @staticmethod
    def forward(
        ctx: Any,
        in_coords_keys: Sequence[CoordinateMapKey],
        out_coords_key: CoordinateMapKey | None,
        coordinate_manager: CoordinateManager,
        *in_feats: torch.Tensor,
    ) -> torch.Tensor:
        _check_feats(coordinate_manager, in_coords_keys, in_feats)
        out_key, maps = union_maps(coordinate_manager, in_coords_keys, out_coords_key)
        if out_coords_key is not None and not out_coords_key.is_key_set():
            out_coords_key._assign(out_key)  # MinkowskiEngine fills in the caller's placeholder key
        return _union_forward(ctx, maps, coordinate_manager.size(out_key), in_feats)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        return (None, None, None, *_union_backward(ctx, grad_out))


class _UnionOnMaps(torch.autograd.Function):
    """The layer's path: apply(maps, num_out, *feats) with the maps computed once by the layer."""

    @staticmethod
    def forward(ctx: Any, maps: Maps, num_out: int, *feats: torch.Tensor) -> torch.Tensor:
        return _union_forward(ctx, maps, num_out, feats)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        return (None, None, *_union_backward(ctx, grad_out))


class MinkowskiUnion(nn.Module):
    """``forward(*inputs)``: SparseTensor on the union of the inputs' coordinates, features summed.

    Every input must be a SparseTensor of one coordinate manager and tensor stride, with the
    same number of channels; at least two inputs.
    """

    def forward(self, *inputs: Any) -> SparseTensor:
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])
        if len(inputs) < 2:
            raise SparseInputError("MinkowskiUnion needs at least 2 SparseTensors")
        if not all(isinstance(x, SparseTensor) for x in inputs):
            raise SparseInputError("MinkowskiUnion accepts only SparseTensor inputs")
        same_manager(list(inputs), "MinkowskiUnion")
        manager = inputs[0].coordinate_manager
        keys = [x.coordinate_map_key for x in inputs]
        _check_feats(manager, keys, [x.F for x in inputs])
        out_key, maps = union_maps(manager, keys)
        feats = _UnionOnMaps.apply(maps, manager.size(out_key), *[x.F for x in inputs])
        return SparseTensor(feats, coordinate_map_key=out_key, coordinate_manager=manager)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
