"""Pooling kernels over a cached kernel map: max (custom autograd), average/sum (differentiable ops)."""

from __future__ import annotations

from typing import Any

import torch

from stseg_models.sparse.kernel_map import KernelMap


def max_pool_forward(feats: torch.Tensor, kmap: KernelMap) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise max over each output's neighbours -> (out [N_out, C], argmax input row [N_out, C]).

    Ties go to the first offset in kernel order. Outputs without neighbours get 0 and argmax -1.
    """
    n_out, c = kmap.num_out, feats.shape[1]
    out = feats.new_full((n_out, c), float("-inf"))
    arg = torch.full((n_out, c), -1, dtype=torch.int64, device=feats.device)
    for i, o in kmap.pairs():  # within one offset every output row appears at most once
        if i.numel() == 0:
            continue
        v, cur = feats.index_select(0, i), out.index_select(0, o)
        better = v > cur
        out.index_copy_(0, o, torch.where(better, v, cur))
        arg.index_copy_(
            0, o, torch.where(better, i.unsqueeze(1).expand(-1, c), arg.index_select(0, o))
        )
    return out.masked_fill(arg < 0, 0.0), arg  # unconditional: no host sync inside the layer


class MaxPoolFunction(torch.autograd.Function):
    """Max pooling: the gradient of each output goes to the one input row that attained the max."""

    @staticmethod
    def forward(ctx: Any, feats: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        out, arg = max_pool_forward(feats, kmap)
        ctx.save_for_backward(arg)
        ctx.num_in = feats.shape[0]
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (arg,) = ctx.saved_tensors
        valid = arg >= 0
        grad = grad_out.new_zeros((ctx.num_in, grad_out.shape[1]))
        grad.scatter_add_(0, arg.clamp(min=0), grad_out * valid.to(grad_out.dtype))
        return grad, None


def max_pool(feats: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    return MaxPoolFunction.apply(feats, kmap)


def lowest_where_empty(out: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """MinkowskiEngine leaves a max-pooled output without neighbours at the dtype's lowest value.

    An output can lack neighbours on given coordinates, or when the kernel is smaller than the
    stride; the max-pool kernels leave such rows at 0.
    """
    count = torch.bincount(kmap.out_idx.long(), minlength=kmap.num_out)
    return out.masked_fill((count == 0).unsqueeze(1), torch.finfo(out.dtype).min)


def sum_pool(feats: torch.Tensor, kmap: KernelMap, average: bool) -> torch.Tensor:
    """Sum (or mean, dividing by each output's neighbour count) of neighbour features [N_out, C]."""
    out = feats.new_zeros((kmap.num_out, feats.shape[1]))
    if kmap.in_idx.numel():
        out = out.index_add(0, kmap.out_idx, feats.index_select(0, kmap.in_idx))
    if average:
        count = torch.bincount(kmap.out_idx, minlength=kmap.num_out).clamp_(min=1)
        out = out / count.to(feats.dtype).unsqueeze(1)
    return out


def segment_max(feats: torch.Tensor, segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Max of rows per segment [S, C]; the gradient goes to the first row attaining it."""
    return SegmentMaxFunction.apply(feats, segment, num_segments)


class SegmentMaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, feats: torch.Tensor, segment: torch.Tensor, num_segments: int
    ) -> torch.Tensor:
        c = feats.shape[1]
        idx = segment.unsqueeze(1).expand(-1, c)
        out = feats.new_full((num_segments, c), float("-inf")).scatter_reduce(
            0, idx, feats, reduce="amax"
        )
        rows = torch.arange(feats.shape[0], device=feats.device).unsqueeze(1).expand(-1, c)
        cand = torch.where(feats == out.gather(0, idx), rows, torch.full_like(rows, feats.shape[0]))
        first = torch.full(
            (num_segments, c), feats.shape[0], dtype=torch.int64, device=feats.device
        )
        first = first.scatter_reduce(0, idx, cand, reduce="amin")
        ctx.save_for_backward(first)
        ctx.num_in = feats.shape[0]
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (first,) = ctx.saved_tensors
        grad = grad_out.new_zeros((ctx.num_in + 1, grad_out.shape[1]))
        grad.scatter_add_(0, first, grad_out)
        return grad[:-1], None, None
