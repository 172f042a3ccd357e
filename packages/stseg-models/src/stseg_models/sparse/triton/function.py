"""Sparse convolution through the Triton kernels: pass functions and an autograd function.

`triton_conv_forward` / `triton_conv_backward` take the arguments of
`conv_function.conv_forward` / `conv_backward` (features and weight already in the compute dtype,
autocast off), so `SparseConvolutionFunction` can call them in place of the torch passes.
`TritonSparseConvolution` is the same convolution as a standalone autograd function, with
`SparseConvolutionFunction`'s dtype rules (autocast's dtype when on, else the promoted one;
gradients in the inputs' dtypes, the weight gradient summed in float32).
"""

from __future__ import annotations

from typing import Any

import torch

from stseg_models.sparse.conv_function import compute_dtype
from stseg_models.sparse.kernel_map import KernelMap
from stseg_models.sparse.triton import kernels
from stseg_models.sparse.triton.tables import tables_for


def _pointwise(kmap: KernelMap) -> bool:
    """A 1x1 map on one set: the identity offset is every pair, one dense matmul (cuBLAS)."""
    return kmap.identity >= 0 and kmap.out_unique and kmap.in_unique


def triton_conv_forward(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """out [N_out, C_out] = sum over pairs (i, o, k) of feats[i] @ weight[k]; one dtype."""
    if _pointwise(kmap):
        return feats @ weight[kmap.identity]
    table = tables_for(kmap).forward()
    return kernels.gather_gemm(feats.contiguous(), table, weight, transpose=False)


def triton_conv_backward(
    grad_out: torch.Tensor,
    feats: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    need_feats: bool,
    need_weight: bool,
    weight_grad_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(grad feats [N_in, C_in], grad weight [K, C_in, C_out] in `weight_grad_dtype`).

    grad_feats[i] = sum over pairs (i, o, k) of grad_out[o] @ weight[k]^T (the other side's
    table, the same kernel); grad_weight[k] = feats[in_idx_k]^T @ grad_out[out_idx_k].
    """
    grad_out = grad_out.contiguous()
    feats = feats.contiguous()
    dtype = weight_grad_dtype or weight.dtype
    if _pointwise(kmap):
        gw = None
        if need_weight:
            gw = torch.zeros_like(weight, dtype=dtype)
            gw[kmap.identity] = (feats.t() @ grad_out).to(dtype)
        gf = grad_out @ weight[kmap.identity].t() if need_feats else None
        return gf, gw
    tables = tables_for(kmap)
    grad_feats = None
    if need_feats:
        grad_feats = kernels.gather_gemm(grad_out, tables.backward(), weight, transpose=True)
    grad_weight = None
    if need_weight:
        summed = kernels.weight_grad(
            feats, grad_out, kmap.in_idx, kmap.out_idx, tables.starts(), kmap.counts
        )
        grad_weight = summed if summed.dtype == dtype else summed.to(dtype)
    return grad_feats, grad_weight


class TritonSparseConvolution(torch.autograd.Function):
    """apply(feats [N_in, C_in], weight [K, C_in, C_out], kmap) -> [N_out, C_out] via Triton."""

    @staticmethod
    def forward(
        ctx: Any, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap
    ) -> torch.Tensor:
        dtype = compute_dtype(feats, weight)
        ctx.dtypes = feats.dtype, weight.dtype
        feats, weight = feats.contiguous().to(dtype), weight.to(dtype)
        ctx.kmap = kmap
        ctx.save_for_backward(feats, weight)
        with torch.autocast(feats.device.type, enabled=False):
            return triton_conv_forward(feats, weight, kmap)

    @staticmethod
    def backward(
        ctx: Any, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        feats, weight = ctx.saved_tensors
        feats_dtype, weight_dtype = ctx.dtypes
        with torch.autocast(feats.device.type, enabled=False):
            gf, gw = triton_conv_backward(
                grad_out.to(weight.dtype),
                feats,
                weight,
                ctx.kmap,
                ctx.needs_input_grad[0],
                ctx.needs_input_grad[1],
                weight_dtype,
            )
        return (gf.to(feats_dtype) if gf is not None else None), gw, None


def triton_conv(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """Differentiable sparse convolution through the Triton kernels."""
    out: torch.Tensor = TritonSparseConvolution.apply(feats, weight, kmap)
    return out
