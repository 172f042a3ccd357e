"""Sparse convolution as a custom autograd function over a cached kernel map.

A pass computes ``dst[s] (+)= src[g] @ W_k`` over every pair (g, s) of every offset k. Two kinds:

* direct, when every destination row has at most one pair (`KernelMap.out_unique` going forward,
  `in_unique` going backward): per offset, gather and multiply into an offset-major buffer, then
  one gather puts the rows in order. A stride-2, size-2 convolution's backward and a transposed
  convolution's forward are like this: no reduction, no scatter plan, no reversed map.
* reduce, otherwise: destination rows are cut into chunks (`KernelMap.plan`); per chunk and offset,
  gather and multiply into a pair buffer, then sum the buffer into the chunk's rows with
  `embedding_bag` (parallel, several times faster on CPU than `index_add_`). Buffers hold at most
  `PAIRS_PER_CHUNK` pairs and `BUFFER_ELEMENTS` values, so memory stays bounded.

The zero offset of a same-set map is one dense matmul. Backward runs the transposed pass for the
input gradient: directly when input rows are unique, on the forward map itself with mirrored
weights (``W[-k]^T``) when the map is a same-set map with a symmetric kernel (the transpose of such
a map is the map itself, offsets permuted: no reversed copy, the forward's plan is reused), and on
the reversed map otherwise. The weight gradient comes from the same gathers; nothing gathered is
saved between forward and backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from stseg_models.sparse.kernel_map import KernelMap

BUFFER_ELEMENTS = 2**25  # at most 128 MiB of float32 per pair buffer
PAIRS_PER_CHUNK = 2**20  # pairs per chunk of a reduce pass, halved while over BUFFER_ELEMENTS


def _pairs_per_chunk(channels: int) -> int:
    """Chunk size for `channels` buffer columns: PAIRS_PER_CHUNK, halved until under the budget."""
    n = PAIRS_PER_CHUNK
    while n > 1 and n * channels > BUFFER_ELEMENTS:
        n //= 2
    return n


def _reduce_pass(
    src: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    need_out: bool,
    wsel: Sequence[int],
    transpose: bool,
    identity: torch.Tensor | None = None,
    grad_weight: torch.Tensor | None = None,
    other: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """out[o] = sum over pairs (i, o) of offset j of src[i] @ W[wsel[j]] (transposed if asked).

    `identity` [C_src, C_dst]: the same-set zero offset's matrix, applied densely (out[o] +=
    src[o] @ identity) in the same write as the chunk's sum. With grad_weight/other given, also
    grad_weight[wsel[j]] += other[o]^T @ src[i] (the weight gradient, from the same gathers).
    Returns out [N_out, C_dst] if `need_out`.
    """
    if not need_out and grad_weight is None:
        return None
    channels = weight.shape[1] if transpose else weight.shape[2]
    out = src.new_empty((kmap.num_out, channels)) if need_out else None
    plan = kmap.plan(_pairs_per_chunk(channels))
    for (first, last), slices, order, offsets in zip(
        plan.chunks, plan.slices, plan.order, plan.offsets, strict=True
    ):
        size = sum(hi - lo for lo, hi in slices)
        buffer = src.new_empty((size, channels)) if out is not None and size else None
        pos = 0
        for j, (lo, hi) in enumerate(slices):
            if hi <= lo:
                continue
            k = wsel[j]
            g = src.index_select(0, kmap.in_idx[lo:hi])
            if buffer is not None:
                w = weight[k].t() if transpose else weight[k]
                torch.mm(g, w, out=buffer[pos : pos + hi - lo])
            if grad_weight is not None and other is not None:
                grad_weight[k].addmm_(other.index_select(0, kmap.out_idx[lo:hi]).t(), g)
            pos += hi - lo
        if out is None:
            continue
        rows = out[first:last]
        if buffer is None:
            if identity is not None:
                torch.mm(src[first:last], identity, out=rows)
            else:
                rows.zero_()
            continue
        summed = F.embedding_bag(order, buffer, offsets, mode="sum")
        if identity is not None:
            torch.addmm(summed, src[first:last], identity, out=rows)
        else:
            rows.copy_(summed)
    return out


def _direct_pass(
    src: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    backward: bool,
    need_out: bool,
    grad_weight: torch.Tensor | None = None,
    other: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Pass over a map whose destination rows have at most one pair each; returns the result.

    Forward (``backward=False``): out[o] = src[i] @ W[k] over pairs (i, o, k), on `out_unique` maps.
    Backward: out[i] = src[o] @ W[k]^T, on `in_unique` maps, with optionally
    grad_weight[k] += other[i]^T @ src[o]. Rows without a pair are zero. The products go to an
    offset-major buffer that one gather (`KernelMap.slots`) puts in row order — several times
    faster than scattering each offset; past `BUFFER_ELEMENTS` each offset is scattered instead.
    """
    gather, scatter = (kmap.out_idx, kmap.in_idx) if backward else (kmap.in_idx, kmap.out_idx)
    channels = weight.shape[1] if backward else weight.shape[2]
    rows = kmap.num_in if backward else kmap.num_out
    pairs = sum(kmap.counts)
    buffered = need_out and pairs * channels <= BUFFER_ELEMENTS
    out: torch.Tensor | None = None
    if buffered:
        buffer = src.new_empty((pairs + 1, channels))
        buffer[pairs].zero_()  # the row read by destination rows without a pair
    elif need_out:
        out = src.new_zeros((rows, channels))
    for k, (lo, hi) in enumerate(kmap.slices()):
        if hi <= lo:
            continue
        g = src.index_select(0, gather[lo:hi])
        if need_out:
            w = weight[k].t() if backward else weight[k]
            if buffered:
                torch.mm(g, w, out=buffer[lo:hi])
            elif out is not None:
                out.index_put_((scatter[lo:hi],), g @ w)
        if grad_weight is not None and other is not None:
            grad_weight[k].addmm_(other.index_select(0, scatter[lo:hi]).t(), g)
    if buffered:
        out = buffer.index_select(0, kmap.slots("in" if backward else "out"))
    return out


def conv_forward(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """out [N_out, C_out] = sum over pairs (i, o, k) of feats[i] @ weight[k] into row o; weight [K, C_in, C_out]."""
    if kmap.identity >= 0 and kmap.out_unique:
        return feats @ weight[kmap.identity]  # the identity is every pair there is (1x1 kernel)
    if kmap.out_unique:
        out = _direct_pass(feats, weight, kmap, backward=False, need_out=True)
    else:
        # the zero offset on the same set is a dense matmul: no gather, no scatter
        identity = weight[kmap.identity] if kmap.identity >= 0 else None
        out = _reduce_pass(feats, weight, kmap, True, range(kmap.kernel_volume), False, identity)
    assert out is not None
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
    grad_weight = torch.zeros_like(weight) if need_weight else None
    identity = None
    if kmap.identity >= 0:
        identity = weight[kmap.identity].t()
        if grad_weight is not None:
            grad_weight[kmap.identity] = feats.t() @ grad_out
        if kmap.in_unique:  # the identity is every pair there is (1x1 kernel)
            return (grad_out @ identity if need_feats else None), grad_weight
    if kmap.in_unique:
        grad_feats = _direct_pass(grad_out, weight, kmap, True, need_feats, grad_weight, feats)
    elif kmap.mirror is not None:
        # pairs of offset j, read backwards, are the pairs of offset -j of the transposed map
        grad_feats = _reduce_pass(
            grad_out, weight, kmap, need_feats, kmap.mirror, True, identity, grad_weight, feats
        )
    else:
        # reversed map: "inputs" are output rows of the forward, "outputs" its input rows
        rev, wsel = kmap.reversed(), range(kmap.kernel_volume)
        grad_feats = _reduce_pass(
            grad_out, weight, rev, need_feats, wsel, True, identity, grad_weight, feats
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
