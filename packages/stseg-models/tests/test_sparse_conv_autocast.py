"""Sparse convolutions under torch.autocast (bf16 on CPU; the CUDA twin is in test_sparse_cuda.py).

Every pass kind (reduce, direct, patch, 1x1) must run in the autocast dtype, return gradients in
the inputs' dtypes, and agree with the float32 result to bf16 precision; mixed input dtypes outside
autocast run in the promoted dtype.
"""

from __future__ import annotations

import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.sparse import conv_function
from stseg_models.testing import random_cloud


def _room(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return random_cloud(1500, 12, 16, seed)


def _layers() -> torch.nn.ModuleList:
    torch.manual_seed(0)
    return torch.nn.ModuleList(
        [
            ME.MinkowskiConvolution(16, 24, kernel_size=3, dimension=3),  # reduce pass
            ME.MinkowskiConvolution(24, 32, kernel_size=2, stride=2, dimension=3),  # patch/direct
            ME.MinkowskiBatchNorm(32),
            ME.MinkowskiReLU(),
            ME.MinkowskiConvolution(32, 32, kernel_size=1, dimension=3),  # dense 1x1
            ME.MinkowskiConvolutionTranspose(32, 8, kernel_size=2, stride=2, dimension=3),
        ]
    )


def _run(autocast: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    coords, feats = _room()
    layers = _layers()
    f = feats.clone().requires_grad_(True)
    x = ME.SparseTensor(f, coords)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for layer in layers:
            x = layer(x)
        out = x.F
    out.float().square().sum().backward()
    assert f.grad is not None
    return out, [f.grad] + [p.grad for p in layers.parameters() if p.grad is not None]


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    """Relative error in norm (bf16 keeps 8 significant bits: ~0.4 % per rounding)."""
    a, b = a.detach().double(), b.detach().double()
    err = float((a - b).norm() / b.norm())
    assert err < tol, f"relative error {err:.3g} >= {tol}"


def test_autocast_runs_in_bf16_and_matches_float32() -> None:
    out32, grads32 = _run(autocast=False)
    out16, grads16 = _run(autocast=True)
    assert out32.dtype == torch.float32 and out16.dtype == torch.bfloat16
    _close(out16, out32, 2e-2)
    assert len(grads16) == len(grads32) == 7  # input, 4 kernels, batch-norm weight and bias
    for g16, g32 in zip(grads16, grads32, strict=True):
        assert g16.dtype == torch.float32  # gradients in the parameters' / input's dtype
        _close(g16, g32, 5e-2)  # ~2 % measured: batch norm's backward amplifies rounding


def test_bf16_weight_gradient_is_summed_in_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """The float32 weight gradient of a bf16 pass equals the float64 sum of the same bf16 products.

    Small gather pieces (16 rows) make the gradient a sum of ~80 pieces per offset: summed in
    bf16 it is 3x further off (5.7e-3 against 1.7e-3 in norm).
    """
    monkeypatch.setattr(conv_function, "GATHER_ELEMENTS", 16 * 16)
    coords, feats = _room(1)
    conv = ME.MinkowskiConvolution(16, 8, kernel_size=3, dimension=3)
    x = ME.SparseTensor(feats.requires_grad_(True), coords)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    grad_out = torch.randn(y.F.shape, generator=torch.Generator().manual_seed(2))
    y.F.backward(grad_out.bfloat16())
    # reference: the same bf16-rounded operands, products and sums in float64
    f64 = feats.detach().bfloat16().double().requires_grad_(True)
    w64 = conv.kernel.detach().bfloat16().double().requires_grad_(True)
    ref_conv = ME.MinkowskiConvolution(16, 8, kernel_size=3, dimension=3).double()
    with torch.no_grad():
        ref_conv.kernel.copy_(w64)
    x64 = ME.SparseTensor(f64, coords)
    ref_conv(x64).F.backward(grad_out.bfloat16().double())
    assert conv.kernel.grad is not None and ref_conv.kernel.grad is not None
    assert conv.kernel.grad.dtype == torch.float32
    _close(conv.kernel.grad, ref_conv.kernel.grad, 3e-3)  # 1.7e-3 here; summed in bf16: 5.7e-3


@pytest.mark.parametrize("feats_dtype", [torch.bfloat16, torch.float64])
def test_mixed_dtypes_without_autocast_promote(feats_dtype: torch.dtype) -> None:
    coords, feats = _room(3)
    conv = ME.MinkowskiConvolution(16, 8, kernel_size=3, dimension=3)
    f = feats.to(feats_dtype).requires_grad_(True)
    y = conv(ME.SparseTensor(f, coords))
    assert y.F.dtype == torch.promote_types(feats_dtype, torch.float32)
    y.F.sum().backward()
    assert f.grad is not None and f.grad.dtype == feats_dtype
    assert conv.kernel.grad is not None and conv.kernel.grad.dtype == torch.float32
