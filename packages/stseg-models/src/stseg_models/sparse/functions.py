"""MinkowskiEngine 0.5.4's autograd Function classes, with its ``apply`` argument lists.

Each runs the native engine's kernels over the coordinate manager's cached kernel maps, so
``MinkowskiConvolutionFunction.apply(x.F, conv.kernel, conv.kernel_generator,
conv.convolution_mode, x.coordinate_map_key, out_key, x.coordinate_manager)`` equals the layer's
output features. An output key of None (or one the manager does not hold, such as a fresh
``CoordinateMapKey``) means the layer's own output set (`conv.default_output_key`): the input
floored to the kernel stride (convolution, pooling), the set at the finer stride with key suffix
"", generated if missing (transposed ones), the kernel footprint (a generator with
``expand_coordinates``), one row per batch index in ascending order (global pooling). Only the features are returned, as in MinkowskiEngine; the
native keys are immutable, so a fresh key passed in is not filled in. ``convolution_mode`` is
accepted and ignored.
"""

from __future__ import annotations

from typing import Any

import torch

from stseg_models.sparse.conv import default_output_key
from stseg_models.sparse.conv_function import SparseConvolutionFunction
from stseg_models.sparse.coordinate_manager import CoordinateManager, CoordinateMapKey
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import lookup
from stseg_models.sparse.kernel import KernelGenerator
from stseg_models.sparse.kernel_map import KernelMap
from stseg_models.sparse.pooling_function import (
    MaxPoolFunction,
    SegmentMaxFunction,
    lowest_where_empty,
)


def _manager(manager: CoordinateManager | None, what: str) -> CoordinateManager:
    if not isinstance(manager, CoordinateManager):
        raise SparseInputError(f"{what} needs the input's coordinate_manager")
    return manager


def _known(manager: CoordinateManager, key: CoordinateMapKey | None) -> bool:
    return key is not None and key in manager.get_coordinate_map_keys()


def layer_kernel_map(
    manager: CoordinateManager,
    generator: KernelGenerator,
    in_key: CoordinateMapKey,
    out_key: CoordinateMapKey | None,
    transpose: bool,
) -> KernelMap:
    """The kernel map a (transposed) convolution or pooling with `generator` uses."""
    if not isinstance(generator, KernelGenerator):
        raise SparseInputError(
            f"kernel_generator must be a KernelGenerator, got {type(generator).__name__}"
        )
    if not _known(manager, out_key):  # the layer's own output set (MinkowskiEngine's rule)
        out_key = default_output_key(manager, in_key, generator, transpose)
    assert out_key is not None
    return manager.kernel_map(in_key, out_key, generator, transpose)


def _checked_kernel_map(
    name: str,
    transpose: bool,
    feats: torch.Tensor,
    generator: KernelGenerator,
    in_key: CoordinateMapKey | None,
    out_key: CoordinateMapKey | None,
    manager: CoordinateManager | None,
) -> KernelMap:
    """The kernel map of a (transposed) convolution or pooling Function, its input checked."""
    if in_key is None:
        raise SparseInputError(f"{name} needs the input's coordinate_map_key")
    kmap = layer_kernel_map(_manager(manager, name), generator, in_key, out_key, transpose)
    if feats.dim() != 2 or feats.shape[0] != kmap.num_in:
        raise SparseInputError(
            f"input features must be [{kmap.num_in}, C] for this coordinate set, got {tuple(feats.shape)}"
        )
    return kmap


class _ConvolutionFunctionBase(torch.autograd.Function):
    transpose = False

    @classmethod
    def forward(  # type: ignore[override]
        cls,
        ctx: Any,
        input_features: torch.Tensor,
        kernel_weights: torch.Tensor,
        kernel_generator: KernelGenerator,
        convolution_mode: Any = None,
        in_coordinate_map_key: CoordinateMapKey | None = None,
        out_coordinate_map_key: CoordinateMapKey | None = None,
        coordinate_manager: CoordinateManager | None = None,
    ) -> torch.Tensor:
        kmap = _checked_kernel_map(
            cls.__name__,
            cls.transpose,
            input_features,
            kernel_generator,
            in_coordinate_map_key,
            out_coordinate_map_key,
            coordinate_manager,
        )
        weight = kernel_weights if kernel_weights.dim() == 3 else kernel_weights.unsqueeze(0)
        if weight.shape[0] != kmap.kernel_volume or weight.shape[1] != input_features.shape[1]:
            raise SparseInputError(
                f"kernel_weights {tuple(kernel_weights.shape)} do not fit {kmap.kernel_volume} "
                f"offsets and {input_features.shape[1]} input channels"
            )
        ctx.weight_shape = kernel_weights.shape
        return SparseConvolutionFunction.forward(ctx, input_features, weight, kmap)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        grad_feats, grad_weight, *_ = SparseConvolutionFunction.backward(ctx, grad_out)
        if grad_weight is not None:
            grad_weight = grad_weight.reshape(ctx.weight_shape)
        return grad_feats, grad_weight, None, None, None, None, None


class MinkowskiConvolutionFunction(_ConvolutionFunctionBase):
    """apply(input_features [N_in, C_in], kernel_weights [K, C_in, C_out] (or [C_in, C_out]),
    kernel_generator, convolution_mode, in_coordinate_map_key, out_coordinate_map_key=None,
    coordinate_manager) -> [N_out, C_out]."""

    transpose = False


class MinkowskiConvolutionTransposeFunction(_ConvolutionFunctionBase):
    """As `MinkowskiConvolutionFunction`, transposed: outputs on the finer set (see the module)."""

    transpose = True


def _pooling_kind(pooling_mode: Any) -> str:
    """'max', 'avg' or 'sum' from a PoolingMode member (native or MinkowskiEngine's) or its name."""
    if pooling_mode is None:
        return "avg"
    name = str(getattr(pooling_mode, "name", pooling_mode)).upper()
    for kind in ("MAX", "AVG", "SUM"):
        if kind in name:
            return kind.lower()
    raise SparseInputError(f"unknown pooling mode {pooling_mode!r}")


def _sum_pool_forward(
    ctx: Any, feats: torch.Tensor, kmap: KernelMap, average: bool
) -> torch.Tensor:
    in_idx, out_idx = kmap.in_idx.long(), kmap.out_idx.long()
    out = feats.new_zeros((kmap.num_out, feats.shape[1])).index_add_(
        0, out_idx, feats.index_select(0, in_idx)
    )
    scale = None
    if average:
        count = torch.bincount(out_idx, minlength=kmap.num_out).clamp_(min=1)
        scale = 1.0 / count.to(feats.dtype).unsqueeze(1)
        out = out * scale
    ctx.save_for_backward(in_idx, out_idx, *(() if scale is None else (scale,)))
    ctx.num_in = feats.shape[0]
    return out


def _sum_pool_backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:
    in_idx, out_idx, *scale = ctx.saved_tensors
    g = grad_out * scale[0] if scale else grad_out
    return grad_out.new_zeros((ctx.num_in, grad_out.shape[1])).index_add_(
        0, in_idx, g.index_select(0, out_idx)
    )


class _LocalPoolingFunctionBase(torch.autograd.Function):
    transpose = False

    @classmethod
    def forward(  # type: ignore[override]
        cls,
        ctx: Any,
        input_features: torch.Tensor,
        pooling_mode: Any,
        kernel_generator: KernelGenerator,
        in_coordinate_map_key: CoordinateMapKey,
        out_coordinate_map_key: CoordinateMapKey | None = None,
        coordinate_manager: CoordinateManager | None = None,
    ) -> torch.Tensor:
        kmap = _checked_kernel_map(
            cls.__name__,
            cls.transpose,
            input_features,
            kernel_generator,
            in_coordinate_map_key,
            out_coordinate_map_key,
            coordinate_manager,
        )
        ctx.kind = _pooling_kind(pooling_mode)
        feats = input_features.contiguous()
        if ctx.kind == "max":
            return lowest_where_empty(MaxPoolFunction.forward(ctx, feats, kmap), kmap)
        return _sum_pool_forward(ctx, feats, kmap, average=ctx.kind == "avg")

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        grad_out = grad_out.contiguous()
        if ctx.kind == "max":
            grad = MaxPoolFunction.backward(ctx, grad_out)[0]
        else:
            grad = _sum_pool_backward(ctx, grad_out)
        return grad, None, None, None, None, None


class MinkowskiLocalPoolingFunction(_LocalPoolingFunctionBase):
    """apply(input_features [N_in, C], pooling_mode, kernel_generator, in_coordinate_map_key,
    out_coordinate_map_key=None, coordinate_manager) -> [N_out, C] (max, average or sum)."""

    transpose = False


class MinkowskiLocalPoolingTransposeFunction(_LocalPoolingFunctionBase):
    """As `MinkowskiLocalPoolingFunction` over the transposed map (unpooling onto the finer set)."""

    transpose = True


def _batch_column(manager: CoordinateManager, key: CoordinateMapKey) -> torch.Tensor:
    """Batch index per row of a coordinate set or, as MinkowskiEngine accepts, of a field
    (``tensor_field.coordinate_field_map_key``)."""
    if key not in manager.get_coordinate_map_keys() and key in manager._fields:
        return manager.get_coordinate_field(key)[:, 0].long()
    return manager.get_coordinates(key)[:, 0].long()


class MinkowskiGlobalPoolingFunction(torch.autograd.Function):
    """apply(input_features [N, C], pooling_mode, in_coordinate_map_key, out_coordinate_map_key=None,
    coordinate_manager) -> [B, C]: one row per batch index (ascending, or the rows of a given
    output set), the sum, mean or max of that scene's rows."""

    @staticmethod
    def forward(
        ctx: Any,
        input_features: torch.Tensor,
        pooling_mode: Any,
        in_coordinate_map_key: CoordinateMapKey,
        out_coordinate_map_key: CoordinateMapKey | None = None,
        coordinate_manager: CoordinateManager | None = None,
    ) -> torch.Tensor:
        manager = _manager(coordinate_manager, "MinkowskiGlobalPoolingFunction")
        batch = _batch_column(manager, in_coordinate_map_key)
        if input_features.dim() != 2 or input_features.shape[0] != batch.shape[0]:
            raise SparseInputError(
                f"input features must be [{batch.shape[0]}, C], got {tuple(input_features.shape)}"
            )
        if _known(manager, out_coordinate_map_key):
            assert out_coordinate_map_key is not None
            ids = manager.get_coordinates(out_coordinate_map_key)[:, 0].long()
        else:
            ids = torch.unique(batch)
        rows = lookup(batch.unsqueeze(1), ids.unsqueeze(1))
        if bool((rows < 0).any()):
            raise SparseInputError("the output set has no row for some batch index of the input")
        ctx.kind = _pooling_kind(pooling_mode)
        feats, b = input_features.contiguous(), ids.shape[0]
        if ctx.kind == "max":
            return SegmentMaxFunction.forward(ctx, feats, rows, b)
        out = feats.new_zeros((b, feats.shape[1])).index_add_(0, rows, feats)
        scale = None
        if ctx.kind == "avg":
            count = torch.bincount(rows, minlength=b).clamp_(min=1).to(feats.dtype).unsqueeze(1)
            scale = 1.0 / count
            out = out * scale
        ctx.save_for_backward(rows, *(() if scale is None else (scale,)))
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        grad_out = grad_out.contiguous()
        if ctx.kind == "max":
            grad = SegmentMaxFunction.backward(ctx, grad_out)[0]
        else:
            rows, *scale = ctx.saved_tensors
            grad = (grad_out * scale[0] if scale else grad_out).index_select(0, rows)
        return grad, None, None, None, None


class MinkowskiDirectMaxPoolingFunction(torch.autograd.Function):
    """apply(in_map [P], out_map [P], in_feat [N_in, C], out_nrows, is_sorted=False) -> [out_nrows, C].

    ``out[o, c] = max over pairs p with out_map[p] = o of in_feat[in_map[p], c]``; rows without a
    pair are 0. The gradient of each output goes to the first pair attaining the maximum.
    """

    @staticmethod
    def forward(
        ctx: Any,
        in_map: torch.Tensor,
        out_map: torch.Tensor,
        in_feat: torch.Tensor,
        out_nrows: int,
        is_sorted: bool = False,
    ) -> torch.Tensor:
        in_map, out_map = in_map.long().to(in_feat.device), out_map.long().to(in_feat.device)
        if in_map.shape != out_map.shape or in_map.dim() != 1:
            raise SparseInputError("in_map and out_map must be 1D tensors of one length")
        n, c = in_feat.shape
        if in_map.numel() and (int(in_map.min()) < 0 or int(in_map.max()) >= n):
            raise SparseInputError(f"in_map holds rows outside [0, {n})")
        if out_map.numel() and (int(out_map.min()) < 0 or int(out_map.max()) >= out_nrows):
            raise SparseInputError(f"out_map holds rows outside [0, {out_nrows})")
        values = in_feat.index_select(0, in_map)
        idx = out_map.unsqueeze(1).expand(-1, c)
        out = in_feat.new_full((out_nrows, c), float("-inf")).scatter_reduce(
            0, idx, values, reduce="amax"
        )
        # first pair attaining the maximum, per (output row, channel); P where a row has no pair
        pairs = torch.arange(in_map.numel(), device=in_feat.device).unsqueeze(1).expand(-1, c)
        hit = torch.where(values == out.gather(0, idx), pairs, torch.full_like(pairs, len(in_map)))
        first = torch.full((out_nrows, c), len(in_map), dtype=torch.int64, device=in_feat.device)
        first = first.scatter_reduce(0, idx, hit, reduce="amin")
        ctx.save_for_backward(in_map, first)
        ctx.num_in = n
        return out.masked_fill(first == len(in_map), 0.0)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        in_map, first = ctx.saved_tensors
        valid = first < in_map.numel()
        src_rows = torch.cat([in_map, in_map.new_zeros(1)])[first]  # [out_nrows, C]
        grad = grad_out.new_zeros((ctx.num_in, grad_out.shape[1]))
        grad.scatter_add_(0, src_rows, grad_out * valid.to(grad_out.dtype))
        return None, None, grad, None, None
