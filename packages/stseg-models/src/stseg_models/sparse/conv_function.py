"""Sparse convolution as a custom autograd function over a cached kernel map.

Forward: the zero offset of a same-set map is one dense matmul. Every other offset k gathers its
input rows and multiplies by ``W[k]`` into a pair buffer; the buffer is then summed into the output
rows with `embedding_bag` over the map's CSR regrouping (`KernelMap.bags`), which is parallel and
several times faster on CPU than `index_add_`. Offsets are processed in runs whose buffer stays
under `BUFFER_ELEMENTS`, so peak memory is bounded whatever the channel count.

Backward mirrors this and recomputes the gathers instead of saving them: memory stays at the size
of the inputs and outputs (autograd through the same ops would keep every gathered block alive).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from stseg_models.sparse.kernel_map import KernelMap

BUFFER_ELEMENTS = 2**24  # 64 MiB of float32 per pair buffer


def offset_runs(kmap: KernelMap, channels: int) -> list[tuple[int, int]]:
    """Consecutive offset ranges ``[first, last)`` (identity excluded) whose pairs x channels fit the buffer."""
    runs: list[tuple[int, int]] = []
    first, acc = 0, 0
    for k, count in enumerate(kmap.counts):
        if k == kmap.identity:
            if k > first:
                runs.append((first, k))
            first, acc = k + 1, 0
            continue
        if acc and (acc + count) * channels > BUFFER_ELEMENTS:
            runs.append((first, k))
            first, acc = k, 0
        acc += count
    if first < len(kmap.counts):
        runs.append((first, len(kmap.counts)))
    return [(a, b) for a, b in runs if sum(kmap.counts[a:b]) > 0]


def conv_forward(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """out [N_out, C_out] = sum_k scatter(out_idx_k, feats[in_idx_k] @ weight[k]); weight [K, C_in, C_out]."""
    c_out = weight.shape[2]
    if kmap.identity >= 0:
        out = feats @ weight[kmap.identity]  # zero offset on the same set: no gather, no scatter
    else:
        out = feats.new_zeros((kmap.num_out, c_out))
    pairs, starts, counts = kmap.pairs(), kmap.starts, kmap.counts
    for first, last in offset_runs(kmap, c_out):
        base = starts[first]
        buffer = feats.new_empty((sum(counts[first:last]), c_out))
        for k in range(first, last):
            if counts[k]:
                lo = starts[k] - base
                torch.mm(feats.index_select(0, pairs[k][0]), weight[k], out=buffer[lo : lo + counts[k]])
        bags = kmap.bags(first, last, "out")
        out += F.embedding_bag(bags.order, buffer, bags.offsets, mode="sum")
    return out


def conv_backward(
    grad_out: torch.Tensor, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap, need_feats: bool, need_weight: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients w.r.t. feats [N_in, C_in] and weight [K, C_in, C_out]."""
    grad_out = grad_out.contiguous()
    c_in = feats.shape[1]
    grad_feats: torch.Tensor | None = None
    grad_weight = torch.zeros_like(weight) if need_weight else None
    if kmap.identity >= 0:
        if need_feats:
            grad_feats = grad_out @ weight[kmap.identity].t()
        if grad_weight is not None:
            grad_weight[kmap.identity] = feats.t() @ grad_out
    if need_feats and grad_feats is None:
        grad_feats = feats.new_zeros(feats.shape)
    pairs, starts, counts = kmap.pairs(), kmap.starts, kmap.counts
    for first, last in offset_runs(kmap, c_in):
        base = starts[first]
        buffer = feats.new_empty((sum(counts[first:last]), c_in)) if need_feats else None
        for k in range(first, last):
            if not counts[k]:
                continue
            i, o = pairs[k]
            g = grad_out.index_select(0, o)
            if grad_weight is not None:
                torch.mm(feats.index_select(0, i).t(), g, out=grad_weight[k])
            if buffer is not None:
                lo = starts[k] - base
                torch.mm(g, weight[k].t(), out=buffer[lo : lo + counts[k]])
        if buffer is not None and grad_feats is not None:
            bags = kmap.bags(first, last, "in")
            grad_feats += F.embedding_bag(bags.order, buffer, bags.offsets, mode="sum")
    return grad_feats, grad_weight


class SparseConvolutionFunction(torch.autograd.Function):
    """autograd wrapper: apply(feats [N_in, C_in], weight [K, C_in, C_out], kmap) -> [N_out, C_out]."""

    @staticmethod
    def forward(ctx: Any, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        feats = feats.contiguous()
        ctx.save_for_backward(feats, weight)
        ctx.kmap = kmap
        return conv_forward(feats, weight, kmap)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        feats, weight = ctx.saved_tensors
        gf, gw = conv_backward(grad_out, feats, weight, ctx.kmap, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return gf, gw, None


def sparse_conv(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """Differentiable sparse convolution (see `SparseConvolutionFunction`)."""
    return SparseConvolutionFunction.apply(feats, weight, kmap)
