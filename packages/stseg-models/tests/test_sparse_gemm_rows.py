"""Padded GEMM rows of half-precision passes on CPU (`sparse.gemm_rows`): same results, few shapes.

- `padded_rows` rounds up to multiples of 64 below 256 rows, then to four sizes per octave (at
  most 25 % more rows), and is monotone;
- every pass kind (reduce with and without the dense zero offset, direct, patch, 1x1), forward
  and backward, in bf16 with tiny gather pieces and chunks (so that most GEMMs are padded and the
  dense zero offset's windows reach the last row): as close to a float64 reference as the
  unpadded passes;
- GEMMs over a whole layer in pieces equal one GEMM; half precision skips the small-map routes;
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
from stseg_models.sparse.gemm_rows import (
    PRIMITIVE_CACHE_CAPACITY,
    PRIMITIVE_CACHE_ENV,
    padded_rows,
    pads_rows,
)
from stseg_models.testing import random_cloud


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

    # set at import unless the user did (no test sets it)
    assert int(os.environ[PRIMITIVE_CACHE_ENV]) == PRIMITIVE_CACHE_CAPACITY == 2048


@pytest.mark.parametrize("rows", [1, 63, 700, 4096, 5000])
def test_whole_layer_gemms_in_pieces_equal_one_gemm(
    monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    monkeypatch.setattr(conv_function, "GATHER_ELEMENTS", 64 * 1024)  # 1024-row pieces
    g = torch.Generator().manual_seed(rows)
    a, b = torch.randn(rows, 64, generator=g), torch.randn(64, 48, generator=g)
    c = torch.randn(rows, 48, generator=g)
    a16, b16, c16 = a.bfloat16(), b.bfloat16(), c.bfloat16()
    # rows are independent: the pieces and the padded tail give one GEMM's rows
    torch.testing.assert_close(conv_function._whole_mm(a16, b16), a16 @ b16, rtol=8e-3, atol=1e-2)
    # the sum over rows, in float32 from bf16 products: the float64 sum to bf16 precision
    total = conv_function._whole_tmm(a16, c16, torch.float32)
    reference = a16.double().t() @ c16.double()
    assert total.dtype == torch.float32
    assert float((total.double() - reference).norm() / reference.norm()) < 4e-3
    # float32 inputs take the plain GEMM
    torch.testing.assert_close(conv_function._whole_mm(a, b), a @ b)


def test_half_precision_skips_the_small_map_routes() -> None:
    # a 60-point map is small: fp32 takes the one-GEMM route, bf16 the general (padded) passes
    coords, feats = _cloud(5, n=60, extent=5)
    conv = ME.MinkowskiConvolution(8, 8, kernel_size=3, dimension=3)
    x32 = ME.SparseTensor(feats, coords)
    kmap = _map_of(conv, x32)
    assert conv_function._is_small(feats, kmap)
    assert not conv_function._is_small(feats.bfloat16(), kmap)
    assert not conv_function._is_batched(feats.bfloat16(), conv.kernel.bfloat16(), kmap)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = conv(ME.SparseTensor(feats, coords)).F
    y32 = conv(x32).F
    assert float((y16.double() - y32.double()).norm() / y32.double().norm()) < 2e-2


def _map_of(conv: torch.nn.Module, x: ME.SparseTensor) -> object:
    conv(x)
    return next(iter(x.coordinate_manager._kernel_maps.values()))


def _cloud(seed: int, n: int = 900, extent: int = 14) -> tuple[torch.Tensor, torch.Tensor]:
    return random_cloud(n, extent, 8, seed)


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
        # A GEMM's row does not depend on the rows beside it and padded rows of a weight-gradient
        # sum are zero, so the padded passes lose nothing: as close to float64 as the unpadded
        # ones (closer for the zero offset's weight gradient, now summed in float32 by pieces).
        err_p = float((p.double() - r).norm() / r.norm())
        err_u = float((u.double() - r).norm() / r.norm())
        assert err_p < 3e-2 and err_p <= 1.25 * err_u + 1e-3, (err_p, err_u)


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
