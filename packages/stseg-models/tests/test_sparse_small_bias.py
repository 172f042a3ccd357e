"""The bias added inside the convolution's autograd node (`sparse_conv(..., bias)`) against the
plain ``sparse_conv(...) + bias``: the same output, dtype and gradients, bit for bit, on every route."""

from __future__ import annotations

import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.sparse import conv_function
from stseg_models.sparse.conv_function import sparse_conv


def _map_and_feats(n: int, channels: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    rows = torch.cat([torch.zeros(n, 1), torch.randint(0, 6, (n, 3), generator=g)], dim=1).int()
    keep = sorted({tuple(r): i for i, r in reversed(list(enumerate(rows.tolist())))}.values())
    x = ME.SparseTensor(torch.randn(len(keep), channels, generator=g), coordinates=rows[keep])
    gen = ME.KernelGenerator(3, dimension=3)
    kmap = x.coordinate_manager.kernel_map_for(x.coordinate_map_key, x.coordinate_map_key, gen)
    return x.F, kmap, x


def _grads(feats, weight, bias, kmap, folded: bool):
    f, w, b = (t.detach().clone().requires_grad_(True) for t in (feats, weight, bias))
    out = sparse_conv(f, w, kmap, b) if folded else sparse_conv(f, w, kmap) + b
    (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), f.grad, w.grad, b.grad


@pytest.mark.parametrize("route", ["small", "batched", "general"])
@pytest.mark.parametrize(
    ("feats_dtype", "bias_dtype"),
    [
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
        (torch.float32, torch.float64),
    ],
)
def test_folded_bias_equals_added_bias(
    route: str, feats_dtype: torch.dtype, bias_dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    if route != "small":
        monkeypatch.setattr(conv_function, "_is_small", lambda feats, kmap: False)
    if route == "general":
        monkeypatch.setattr(conv_function, "BATCHED_SCALE", 0)
    feats, kmap, _ = _map_and_feats(80, 4, 3)
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(27, 4, 5, generator=g, dtype=feats_dtype)
    bias = torch.randn(1, 5, generator=g, dtype=bias_dtype)
    folded = _grads(feats.to(feats_dtype), weight, bias, kmap, True)
    added = _grads(feats.to(feats_dtype), weight, bias, kmap, False)
    assert folded[0].dtype == added[0].dtype == torch.promote_types(feats_dtype, bias_dtype)
    for a, b in zip(folded, added, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
        assert a.abs().sum() > 0


def test_folded_bias_under_autocast_keeps_the_promoted_output() -> None:
    """bf16 convolution plus a float32 bias gives float32, as ``out + bias`` does."""
    feats, kmap, _ = _map_and_feats(80, 4, 5)
    weight, bias = torch.randn(27, 4, 5), torch.randn(1, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        folded = _grads(feats, weight, bias, kmap, True)
        added = _grads(feats, weight, bias, kmap, False)
    assert folded[0].dtype == torch.float32
    for a, b in zip(folded, added, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_convolution_layer_bias_gradient_is_the_row_sum() -> None:
    _, _, x = _map_and_feats(40, 2, 7)
    conv = ME.MinkowskiConvolution(2, 3, kernel_size=3, bias=True, dimension=3)
    y = conv(x)
    weights = torch.linspace(-1, 1, y.F.numel()).view_as(y.F)
    (y.F * weights).sum().backward()
    assert conv.bias.grad is not None
    torch.testing.assert_close(conv.bias.grad, weights.sum(0, keepdim=True))
    no_bias = sparse_conv(
        x.F,
        conv.kernel,
        y.coordinate_manager.kernel_map_for(
            x.coordinate_map_key, y.coordinate_map_key, conv.kernel_generator
        ),
    )
    assert torch.equal(y.F, no_bias + conv.bias)
