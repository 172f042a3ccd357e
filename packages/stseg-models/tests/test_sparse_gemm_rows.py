"""Padded GEMM rows of half-precision passes on CPU (`sparse.gemm_rows`): same results, few shapes.

- `padded_rows` rounds up to multiples of 64 below 256 rows, then to four sizes per octave (at
  most 25 % more rows), and is monotone;
- every pass kind (reduce with and without the dense zero offset, direct, patch, 1x1), forward
  and backward, in bf16 with tiny gather pieces and chunks (so that most GEMMs are padded and the
  dense zero offset's windows reach the last row): the same outputs and gradients as the unpadded
  passes, and within bf16 rounding of a float64 reference;
- a second point cloud of about the same size reuses nearly every GEMM shape of the first with
  padding, and almost none without (each new shape costs oneDNN a new kernel).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import stseg_models.sparse as ME
from stseg_models.sparse import conv_function
from stseg_models.sparse.gemm_rows import PRIMITIVE_CACHE_ENV, padded_rows, pads_rows


def test_padded_rows_rounds_up_to_few_sizes() -> None:
    sizes = [padded_rows(n) for n in range(1, 2**15 + 1)]
    assert sizes[:64] == [64] * 64 and padded_rows(65) == 128 and padded_rows(256) == 256
    assert [padded_rows(n) for n in (257, 320, 321, 513, 1025, 1280, 1281)] == [
        320, 320, 384, 640, 1280, 1280, 1536,
    ]  # fmt: skip
    assert all(a <= b for a, b in itertools.pairwise(sizes))  # monotone
    for n, m in enumerate(sizes, start=1):
        assert n <= m and (m <= 256 or m <= 1.25 * n), (n, m)
    assert len(set(sizes)) == 4 + 4 * 7  # 64..256, then 4 per octave up to 2**15


def test_only_half_precision_on_cpu_pads() -> None:
    assert pads_rows(torch.zeros(2, dtype=torch.bfloat16))
    assert pads_rows(torch.zeros(2, dtype=torch.float16))
    assert not pads_rows(torch.zeros(2)) and not pads_rows(torch.zeros(2, dtype=torch.float64))


def test_importing_the_engine_sizes_onednns_cache() -> None:
    import os

    assert int(os.environ[PRIMITIVE_CACHE_ENV]) >= 4096  # set at import unless the user did


def _cloud(seed: int, n: int = 900, extent: int = 14) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    spatial = torch.randint(0, extent, (n, 3), generator=g)
    batch = torch.randint(0, 2, (n, 1), generator=g)
    coords = torch.unique(torch.cat([batch, spatial], 1), dim=0).int()
    return coords, torch.randn(len(coords), 8, generator=g)


def _layers() -> torch.nn.ModuleList:
    torch.manual_seed(0)
    return torch.nn.ModuleList(
        [
            ME.MinkowskiConvolution(8, 12, kernel_size=3, dimension=3),  # reduce + zero offset
            ME.MinkowskiConvolution(12, 16, kernel_size=2, stride=2, dimension=3),  # patch / direct
            ME.MinkowskiConvolution(
                16, 16, kernel_size=3, stride=2, dimension=3
            ),  # reduce, reversed
            ME.MinkowskiConvolution(16, 16, kernel_size=1, dimension=3),  # dense 1x1
            ME.MinkowskiConvolutionTranspose(16, 12, kernel_size=3, stride=2, dimension=3),
            ME.MinkowskiConvolutionTranspose(12, 6, kernel_size=2, stride=2, dimension=3),  # direct
        ]
    )


def _run(dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    """Output, input gradient and every kernel's gradient of the stack, in `dtype`."""
    coords, feats = _cloud(seed)
    layers = _layers().to(dtype)
    f = feats.to(dtype).requires_grad_(True)
    x = ME.SparseTensor(f, coords)
    for layer in layers:
        x = layer(x)
    weights = torch.linspace(-1, 1, x.F.numel(), dtype=torch.float64).view_as(x.F)
    (x.F.double() * weights).sum().backward()
    assert f.grad is not None
    return [x.F.detach(), f.grad, *[p.grad for p in layers.parameters() if p.grad is not None]]


def _tiny_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conv_function, "SMALL_PATCH_ELEMENTS", 0)  # the routes of large maps
    monkeypatch.setattr(conv_function, "GATHER_ELEMENTS", 16 * 24)  # 16-48 rows a piece
    monkeypatch.setattr(conv_function, "CPU_PAIR_ELEMENTS", 16 * 300)  # many reduce chunks


def test_padded_passes_equal_unpadded_ones_and_the_float64_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _tiny_pieces(monkeypatch)
    padded = _run(torch.bfloat16)
    reference = _run(torch.float64)
    with monkeypatch.context() as off:
        off.setattr(conv_function, "pads_rows", lambda tensor: False)
        unpadded = _run(torch.bfloat16)
    assert len(padded) == len(unpadded) == len(reference) == 8
    for p, u, r in zip(padded, unpadded, reference, strict=True):
        assert p.dtype == u.dtype and p.shape == u.shape == r.shape
        assert torch.isfinite(p).all()
        # The same products and sums: a GEMM's row does not depend on the rows beside it, and
        # padded rows of a weight-gradient sum are zero. (Equal here; a BLAS that blocks the
        # reduction differently for another row count may round the last bit differently.)
        torch.testing.assert_close(
            p.double(), u.double(), rtol=8e-3, atol=1e-5 * float(r.abs().max())
        )
        err = float((p.double() - r).norm() / r.norm())
        assert err < 3e-2, f"relative error to float64 {err:.3g}"


def _gemm_shapes(seed: int, n: int) -> set[tuple[tuple[int, ...], ...]]:
    coords, feats = _cloud(seed, n=n, extent=30)
    layers = _layers().to(torch.bfloat16)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        x = ME.SparseTensor(feats.bfloat16().requires_grad_(True), coords)
        for layer in layers:
            x = layer(x)
        x.F.float().square().sum().backward()
    return {
        tuple(tuple(s) for s in e.input_shapes[:2]) for e in prof.events() if e.name == "aten::mm"
    }


def test_a_new_cloud_reuses_the_gemm_shapes_of_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conv_function, "SMALL_PATCH_ELEMENTS", 0)
    monkeypatch.setattr(conv_function, "GATHER_ELEMENTS", 16 * 512)
    monkeypatch.setattr(conv_function, "CPU_PAIR_ELEMENTS", 16 * 4000)
    first, second = _gemm_shapes(0, 5000), _gemm_shapes(1, 5050)
    with monkeypatch.context() as off:
        off.setattr(conv_function, "pads_rows", lambda tensor: False)
        first_raw, second_raw = _gemm_shapes(0, 5000), _gemm_shapes(1, 5050)
    new, new_raw = second - first, second_raw - first_raw
    assert len(first_raw) > 100 and len(new_raw) > 0.2 * len(second_raw)  # 264 and 104 of 276
    # What stays new: GEMMs over every row of a layer (1x1 kernels, the zero offset's weight
    # gradient), one per such layer and pass, whose row count is the cloud's own.
    assert len(new) <= 12 and len(first) < 0.2 * len(first_raw), (len(new), len(first))  # 3, 26
