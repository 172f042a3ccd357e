"""The native engine on CUDA: same values as on CPU, and no host synchronisation inside a layer.

Marked `gpu`: skipped where no CUDA device is present (CI). Kernel maps are built (and synchronise
once, for their per-offset pair counts) on a layer's first call; every later forward and backward
must run without the host waiting on the device.
"""

from __future__ import annotations

import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.testing import random_cloud

pytestmark = pytest.mark.gpu


def _room(n: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return random_cloud(n, 24, 8, seed)


def _layers() -> torch.nn.ModuleList:
    torch.manual_seed(0)
    return torch.nn.ModuleList(
        [
            ME.MinkowskiConvolution(8, 16, kernel_size=3, dimension=3),
            ME.MinkowskiConvolution(16, 16, kernel_size=2, stride=2, dimension=3),
            ME.MinkowskiBatchNorm(16),
            ME.MinkowskiReLU(),
            ME.MinkowskiConvolution(16, 16, kernel_size=3, dimension=3),
            ME.MinkowskiConvolutionTranspose(16, 8, kernel_size=2, stride=2, dimension=3),
        ]
    )


def _run(layers: torch.nn.ModuleList, x: ME.SparseTensor) -> ME.SparseTensor:
    for layer in layers:
        x = layer(x)
    return x


def _grads(device: str) -> list[torch.Tensor]:
    coords, feats = _room()
    layers = _layers().to(device)
    f = feats.to(device).requires_grad_(True)
    y = _run(layers, ME.SparseTensor(f, coords.to(device)))
    y.F.square().sum().backward()
    return [y.F.detach().cpu(), f.grad.cpu()] + [p.grad.cpu() for p in layers.parameters()]


def test_cuda_equals_cpu() -> None:
    for a, b in zip(_grads("cuda"), _grads("cpu"), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_no_host_sync_inside_layers_once_maps_exist() -> None:
    coords, feats = _room()
    layers = _layers().cuda()
    x = ME.SparseTensor(feats.cuda(), coords.cuda())
    _run(layers, x).F.sum().backward()  # builds and caches every kernel map
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        f = x.F.detach().requires_grad_(True)
        start = ME.SparseTensor(
            f, coordinate_map_key=x.coordinate_map_key, coordinate_manager=x.coordinate_manager
        )
        _run(layers, start).F.sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert f.grad is not None and torch.isfinite(f.grad).all()
