"""MinkowskiInterpolation / features_at_coordinates / TensorField.splat against a slow reference.

Reference: for each sample and each of its cell's 2^D corners (lowest corner floor(x / s) * s),
if the corner is a voxel, weight prod(1 - |x - c| / s); no renormalisation (MinkowskiEngine 0.5.4).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import stseg_models.sparse as ME


def reference(coords: torch.Tensor, feats: torch.Tensor, stride: int, samples: torch.Tensor):
    rows = {tuple(c): i for i, c in enumerate(coords.tolist())}
    dim = coords.shape[1] - 1
    out = torch.zeros(len(samples), feats.shape[1], dtype=feats.dtype)
    pairs = set()
    for m, p in enumerate(samples.tolist()):
        lower = [math.floor(v / stride) * stride for v in p[1:]]
        for bits in itertools.product([0, 1], repeat=dim):
            c = (int(p[0]), *[lo + b * stride for lo, b in zip(lower, bits, strict=True)])
            if c in rows:
                w = math.prod(1 - abs(v - ci) / stride for v, ci in zip(p[1:], c[1:], strict=True))
                out[m] += w * feats[rows[c]]
                pairs.add((rows[c], m, round(w, 9)))
    return out, pairs


def data(dim: int, stride: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    pts = torch.cat(
        [
            torch.randint(0, 2, (60, 1), generator=g),
            torch.randint(0, 4, (60, dim), generator=g) * stride,
        ],
        1,
    )
    coords = torch.unique(pts, dim=0).int()
    feats = torch.randn(len(coords), 3, generator=g, dtype=torch.float64)
    samples = torch.cat(
        [
            torch.randint(0, 2, (25, 1), generator=g).double(),
            torch.rand(25, dim, generator=g, dtype=torch.float64) * 4 * stride - 0.5,
        ],
        1,
    )
    samples[:3] = coords[:3].double()  # exactly on voxels
    return coords, feats, samples


@pytest.mark.parametrize("dim", [3, 4])
@pytest.mark.parametrize("stride", [1, 2])
def test_interpolation_equals_reference(dim: int, stride: int) -> None:
    coords, feats, samples = data(dim, stride, dim + stride)
    x = ME.SparseTensor(feats, coords, tensor_stride=stride)
    layer = ME.MinkowskiInterpolation(return_kernel_map=True, return_weights=True)
    out, (in_map, out_map), weights = layer(x, samples)
    want, pairs = reference(coords, feats, stride, samples)
    assert torch.allclose(out, want)
    assert in_map.dtype == torch.int32 and out_map.dtype == torch.int32
    got = {
        (i, m, round(w, 9)) for i, m, w in zip(in_map.tolist(), out_map.tolist(), weights.tolist())
    }
    assert got == pairs
    assert torch.allclose(x.features_at_coordinates(samples), want)
    assert torch.allclose(x.features_at_coordinates(samples[:3]), feats[:3])  # on a voxel
    assert torch.equal(ME.MinkowskiInterpolation()(x, samples), out)


def test_interpolation_gradient() -> None:
    coords, feats, samples = data(3, 1, 0)
    key_x = ME.SparseTensor(feats, coords)
    fn = ME.MinkowskiInterpolationFunction

    def f(features: torch.Tensor) -> torch.Tensor:
        return fn.apply(features, samples, key_x.coordinate_map_key, key_x.coordinate_manager)[0]

    assert torch.autograd.gradcheck(f, (feats.clone().requires_grad_(True),))


def test_interpolation_rejects_bad_points() -> None:
    coords, feats, _ = data(3, 1, 1)
    x = ME.SparseTensor(feats, coords)
    with pytest.raises(ME.SparseInputError, match=r"\[M, 4\]"):
        ME.MinkowskiInterpolation()(x, torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ME.SparseInputError, match="SparseTensor"):
        ME.MinkowskiInterpolation()(feats, torch.zeros(3, 4))


@pytest.mark.parametrize("dim", [2, 3])
def test_splat_and_interpolate_back(dim: int) -> None:
    g = torch.Generator().manual_seed(dim)
    pts = torch.cat(
        [
            torch.zeros(12, 1, dtype=torch.float64),
            torch.rand(12, dim, generator=g, dtype=torch.float64) * 3,
        ],
        1,
    )
    feats = torch.randn(12, 2, generator=g, dtype=torch.float64)
    field = ME.TensorField(feats, pts)
    splat = field.splat()
    # reference splat: every point adds w * f to each corner of its cell
    acc: dict[tuple[int, ...], torch.Tensor] = {}
    for p, f in zip(pts.tolist(), feats, strict=True):
        lower = [math.floor(v) for v in p[1:]]
        for bits in itertools.product([0, 1], repeat=dim):
            c = (0, *[lo + b for lo, b in zip(lower, bits, strict=True)])
            w = math.prod(1 - abs(v - ci) for v, ci in zip(p[1:], c[1:], strict=True))
            acc[c] = acc.get(c, torch.zeros(2, dtype=torch.float64)) + w * f
    got = {tuple(c): v for c, v in zip(splat.C.tolist(), splat.F, strict=True)}
    assert set(got) == set(acc) and all(torch.allclose(got[c], acc[c]) for c in acc)
    back = splat.interpolate(field)
    want, _ = reference(splat.C, splat.F, 1, pts)
    assert torch.allclose(back.F, want)
