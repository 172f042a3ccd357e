"""Feature-wise reductions of sparse tensors on one coordinate set, and the MinkowskiStack* containers.

``cat`` concatenates channels; ``sum``, ``mean`` and ``var`` (population variance) combine the
features of two or more tensors row by row. All inputs must be SparseTensors (or all
TensorFields) of one coordinate manager on one coordinate set; to combine different sets use
`MinkowskiUnion` or the SparseTensor operators. ``MinkowskiStackCat(a, b, ...)(x)`` is
``cat(a(x), b(x), ...)``, likewise Sum, Mean and Var (they are ``nn.Sequential`` containers, so
their state-dict names are ``0.kernel``, ``1.bn.weight`` ...).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.validation import same_manager
from stseg_models.sparse.wrap import is_sparse_like, rewrap


def _tensors(args: tuple[Any, ...], what: str, least: int) -> Sequence[Any]:
    """The inputs (``f(a, b, ...)`` or ``f([a, b, ...])``), checked to share one coordinate set."""
    tensors: Sequence[Any] = args
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        tensors = tuple(args[0])
    if len(tensors) < least:
        raise SparseInputError(f"{what}() needs at least {least} tensors, got {len(tensors)}")
    if not all(is_sparse_like(t) for t in tensors):
        raise SparseInputError(f"{what}() accepts only SparseTensor or TensorField arguments")
    if len({type(t) for t in tensors}) != 1:
        raise SparseInputError(f"{what}() cannot mix SparseTensor and TensorField")
    same_manager(list(tensors), what)
    first = tensors[0]
    if hasattr(first, "coordinate_map_key"):
        keys = {t.coordinate_map_key for t in tensors}
        if len(keys) != 1:
            raise SparseInputError(
                f"{what}(): the tensors have different coordinates ({sorted(map(str, keys))})"
            )
    elif len({t._id for t in tensors}) != 1:
        raise SparseInputError(f"{what}(): the fields have different coordinates")
    return tensors


def _combine(
    args: tuple[Any, ...], what: str, least: int, op: Callable[[list[torch.Tensor]], torch.Tensor]
) -> Any:
    tensors = _tensors(args, what, least)
    return rewrap(tensors[0], op([t.F for t in tensors]))


def _total(feats: list[torch.Tensor]) -> torch.Tensor:
    shapes = {f.shape for f in feats}
    if len(shapes) != 1:
        raise SparseInputError(f"the features have different shapes: {sorted(map(tuple, shapes))}")
    out = feats[0] + feats[1]
    for f in feats[2:]:
        out = out + f
    return out


def _variance(feats: list[torch.Tensor]) -> torch.Tensor:
    mu = _total(feats) / len(feats)
    return builtins.sum(((f - mu) ** 2 for f in feats), torch.zeros_like(mu)) / len(feats)


def cat(*tensors: Any) -> Any:
    """Concatenate the channels: ``cat(a, b, ...)`` or ``cat([a, b, ...])`` (one tensor is allowed)."""
    return _combine(tensors, "cat", 1, lambda fs: torch.cat(fs, dim=1))


def sum(*tensors: Any) -> Any:  # MinkowskiEngine's `_sum`, exported as `sum`
    """Row-wise sum of the features of two or more tensors on one coordinate set."""
    return _combine(tensors, "sum", 2, _total)


def mean(*tensors: Any) -> Any:
    """Row-wise mean of the features of two or more tensors on one coordinate set."""
    return _combine(tensors, "mean", 2, lambda fs: _total(fs) / len(fs))


def var(*tensors: Any) -> Any:
    """Row-wise population variance (divides by the count) of two or more tensors' features."""
    return _combine(tensors, "var", 2, _variance)


_sum = sum


class MinkowskiStackCat(nn.Sequential):
    """Apply every child to the same input and concatenate the results' channels."""

    def forward(self, x: Any) -> Any:
        return cat([module(x) for module in self])


class MinkowskiStackSum(nn.Sequential):
    """Apply every child to the same input and sum the results."""

    def forward(self, x: Any) -> Any:
        return sum([module(x) for module in self])


class MinkowskiStackMean(nn.Sequential):
    """Apply every child to the same input and average the results."""

    def forward(self, x: Any) -> Any:
        return mean([module(x) for module in self])


class MinkowskiStackVar(nn.Sequential):
    """Apply every child to the same input; the results' population variance."""

    def forward(self, x: Any) -> Any:
        return var([module(x) for module in self])
