"""Sparse convolution as a custom autograd function over a cached kernel map.

Forward: the zero offset of a same-set map is one dense matmul. The other pairs are processed in
chunks of output rows (`KernelMap.plan`): for each offset, gather the chunk's input rows and
multiply by ``W[k]`` into a pair buffer, then sum the buffer into the chunk's output rows with
`embedding_bag` (parallel, several times faster on CPU than `index_add_`). Buffers stay under
`BUFFER_ELEMENTS`, so peak memory is bounded whatever the channel count.

Backward runs the same scheme on the reversed map (a transposed convolution by ``W^T``) for the
input gradient, and accumulates ``W[k]``'s gradient from the same gathers; nothing gathered is
saved between forward and backward, so memory stays at the size of inputs and outputs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from stseg_models.sparse.kernel_map import KernelMap

BUFFER_ELEMENTS = 2**25  # 128 MiB of float32 per pair buffer


def _chunked(
    feats: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    out: torch.Tensor | None,
    grad_weight: torch.Tensor | None = None,
    other: torch.Tensor | None = None,
    transpose_weight: bool = False,
) -> None:
    """out[rows] += sum_k feats[in_k] @ W_k (W_k^T if transpose_weight), chunk by chunk.

    With grad_weight/other given, also grad_weight[k] += other[out_k]^T @ feats[in_k] (the weight
    gradient of the forward map, computed from the gathers this pass already makes).
    """
    channels = weight.shape[1] if transpose_weight else weight.shape[2]
    plan = kmap.plan(max(channels, 1), BUFFER_ELEMENTS)
    for (first, last), slices, order, offsets in zip(
        plan.chunks, plan.slices, plan.order, plan.offsets, strict=True
    ):
        size = sum(hi - lo for lo, hi in slices)
        if size == 0:
            continue
        buffer = feats.new_empty((size, channels)) if out is not None else None
        pos = 0
        for k, (lo, hi) in enumerate(slices):
            if hi <= lo:
                continue
            g = feats.index_select(0, kmap.in_idx[lo:hi])
            if buffer is not None:
                w = weight[k].t() if transpose_weight else weight[k]
                torch.mm(g, w, out=buffer[pos : pos + hi - lo])
            if grad_weight is not None and other is not None:
                grad_weight[k].addmm_(other.index_select(0, kmap.out_idx[lo:hi]).t(), g)
            pos += hi - lo
        if buffer is not None and out is not None:
            out[first:last] += F.embedding_bag(order, buffer, offsets, mode="sum")


def conv_forward(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """out [N_out, C_out] = sum over pairs (i, o, k) of feats[i] @ weight[k] into row o; weight [K, C_in, C_out]."""
    if kmap.identity >= 0:
        out = feats @ weight[kmap.identity]  # zero offset on the same set: no gather, no scatter
    else:
        out = feats.new_zeros((kmap.num_out, weight.shape[2]))
    _chunked(feats, weight, kmap, out)
    return out


def conv_backward(
    grad_out: torch.Tensor,
    feats: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    need_feats: bool,
    need_weight: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients w.r.t. feats [N_in, C_in] and weight [K, C_in, C_out]."""
    grad_out = grad_out.contiguous()
    grad_feats: torch.Tensor | None = None
    grad_weight = torch.zeros_like(weight) if need_weight else None
    if kmap.identity >= 0:
        if need_feats:
            grad_feats = grad_out @ weight[kmap.identity].t()
        if grad_weight is not None:
            grad_weight[kmap.identity] = feats.t() @ grad_out
    if need_feats and grad_feats is None:
        grad_feats = feats.new_zeros(feats.shape)
    # reversed map: "inputs" are output rows of the forward, "outputs" its input rows
    _chunked(
        grad_out, weight, kmap.reversed(), grad_feats, grad_weight, feats, transpose_weight=True
    )
    return grad_feats, grad_weight


class SparseConvolutionFunction(torch.autograd.Function):
    """autograd wrapper: apply(feats [N_in, C_in], weight [K, C_in, C_out], kmap) -> [N_out, C_out]."""

    @staticmethod
    def forward(
        ctx: Any, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap
    ) -> torch.Tensor:
        feats = feats.contiguous()
        ctx.save_for_backward(feats, weight)
        ctx.kmap = kmap
        return conv_forward(feats, weight, kmap)

    @staticmethod
    def backward(
        ctx: Any, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        feats, weight = ctx.saved_tensors
        gf, gw = conv_backward(
            grad_out, feats, weight, ctx.kmap, ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        )
        return gf, gw, None


def sparse_conv(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """Differentiable sparse convolution (see `SparseConvolutionFunction`)."""
    return SparseConvolutionFunction.apply(feats, weight, kmap)
