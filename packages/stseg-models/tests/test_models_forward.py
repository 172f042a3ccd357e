"""Every registered network runs forward and backward on a tiny synthetic scene (3D or 4D).

Weights are laid out on the meta device and filled from one shared random pool (scaled by the
fan-in), which is far cheaper than the default initialisation of ~3 G parameters across the zoo.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.zoo import build_model, list_models, resolve

torch.set_num_threads(1)  # tiny tensors: threads only add contention on shared CI cores

_POOL_SIZE = 12 << 20  # larger than any single kernel of the zoo (27 x 768 x 512 = 10.6 M)
_POOL = torch.randn(_POOL_SIZE, generator=torch.Generator().manual_seed(0))
#: above this many parameters, only a sample of the big kernels gets a weight gradient (the backward
#: pass still runs through every layer down to the input features); keeps the suite within budget
_FULL_GRAD_LIMIT = 25_000_000


def _cheap_model(name: str, in_channels: int, out_channels: int) -> torch.nn.Module:
    with torch.device("meta"):
        model = build_model(name, in_channels, out_channels)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() >= 2 and pname.endswith("kernel"):
                p.view(-1).copy_(_POOL[: p.numel()])
                p.mul_(1.0 / math.sqrt(p.numel() / p.shape[-1]))
            elif pname.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
        for module in model.modules():
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    return model


def _grad_sample(model: torch.nn.Module) -> list[str]:
    """Parameters that get a weight gradient: all of them for small models; for large ones the
    norms, the stems, the classifier and the first block of every stage."""
    names = [n for n, _ in model.named_parameters()]
    if sum(p.numel() for p in model.parameters()) <= _FULL_GRAD_LIMIT:
        return names
    return [n for n in names if not n.endswith("kernel") or not n.startswith("block") or ".0." in n]


def _scene(dimension: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates [M, 1 + D] (two scenes in a batch; frames 0..2 in 4D) and features [M, 3]."""
    rng = np.random.default_rng(seed)
    rows = []
    for batch in range(2):
        xyz = rng.integers(0, 12, size=(160, 3))
        if dimension == 4:
            xyz = np.hstack([xyz, rng.integers(0, 3, size=(160, 1))])
        xyz = np.unique(xyz, axis=0)
        rows.append(np.hstack([np.full((len(xyz), 1), batch), xyz]))
    coords = torch.from_numpy(np.vstack(rows).astype(np.int32))
    feats = torch.from_numpy(rng.uniform(-0.5, 0.5, size=(len(coords), 3)).astype(np.float32))
    return coords, feats


@pytest.mark.parametrize("name", list_models(include_aliases=False))
def test_every_model_forward_backward(name):
    model = _cheap_model(name, 3, 5).train()
    sampled = set(_grad_sample(model))
    for pname, p in model.named_parameters():
        p.requires_grad_(pname in sampled)
    coords, feats = _scene(model.D)
    x = ME.SparseTensor(feats.requires_grad_(), coordinates=coords)
    out = model(x)
    assert out.F.shape == (len(coords), 5)
    assert torch.equal(out.C, x.C)  # the U-Net lands back on the input voxels, row for row
    assert torch.isfinite(out.F).all()
    (out.F.square().mean() + out.F[:, 0].sum() * 1e-3).backward()
    params = dict(model.named_parameters())
    missing = [n for n in sampled if params[n].grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(params[n].grad).all() for n in sampled)
    assert feats.grad is not None and feats.grad.abs().sum() > 0  # reached the input


def test_eval_mode_is_deterministic_and_batch_independent():
    """In eval mode a scene's logits do not depend on the other scene of the batch."""
    model = _cheap_model("Res16UNet14A", 3, 5).eval()
    coords, feats = _scene(3)
    first = coords[:, 0] == 0
    with torch.no_grad():
        both = model(ME.SparseTensor(feats, coordinates=coords)).F
        alone = model(ME.SparseTensor(feats[first], coordinates=coords[first])).F
        again = model(ME.SparseTensor(feats, coordinates=coords)).F
    assert torch.equal(both, again)
    torch.testing.assert_close(both[first], alone, rtol=1e-4, atol=1e-5)


def test_spatiotemporal_model_accepts_any_dimension_override():
    canonical, spec = resolve("Res16UNet14A")
    assert spec.dimension == 3
    with torch.device("meta"):
        model = build_model(canonical, 3, 5, dimension=4)
    assert model.D == 4 and model.block1[0].conv1.kernel.shape[0] == 29
