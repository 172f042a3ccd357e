"""Mid-size CPU routes against the general ones: the batched convolution (`conv_function`,
`KernelMap.padded`) and the all-offsets-at-once kernel-map lookup (`kernel_map.ALL_AT_ONCE_QUERIES`).

The lookup must give exactly the per-offset loop's pairs (same order, same flags); the batched
convolution the general routes' forward and gradients up to rounding (float64 here).
"""

from __future__ import annotations

import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.sparse import conv_function, kernel_map
from stseg_models.sparse.kernel import KernelGenerator

SEEDS = range(4)


def random_coords(n: int, dim: int, extent: int, seed: int) -> torch.Tensor:
    """Up to n distinct rows (two batches), first occurrences kept in order."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.cat(
        [torch.randint(0, 2, (n, 1), generator=g), torch.randint(0, extent, (n, dim), generator=g)],
        dim=1,
    ).int()
    keep = sorted({tuple(r): i for i, r in reversed(list(enumerate(rows.tolist())))}.values())
    return rows[keep]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", ["same", "strided", "other"])
def test_all_at_once_lookup_equals_per_offset_loop(
    seed: int, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_c = random_coords(300, 3, 10, seed)
    if case == "same":
        out_c, offsets = in_c, KernelGenerator(3, dimension=3).region_offsets
    elif case == "strided":
        out_c = ME.SparseTensor(torch.zeros(len(in_c), 1), coordinates=in_c)
        out_c = out_c.coordinate_manager.get_coordinates(
            out_c.coordinate_manager.stride(out_c.coordinate_map_key, 2)
        )
        offsets = KernelGenerator(2, dimension=3).region_offsets
    else:
        out_c = random_coords(400, 3, 10, seed + 50)
        offsets = torch.tensor([[1, 0, 0], [0, -2, 1], [0, 0, 0], [3, 3, -1]])
    same = case == "same"
    assert len(out_c) * len(offsets) > kernel_map.SMALL_QUERIES  # not the dictionary route
    assert len(out_c) * len(offsets) <= kernel_map.ALL_AT_ONCE_QUERIES
    at_once = kernel_map.build_kernel_map(in_c, out_c, offsets, same_set=same)
    monkeypatch.setattr(kernel_map, "ALL_AT_ONCE_QUERIES", 0)
    loop = kernel_map.build_kernel_map(in_c, out_c, offsets, same_set=same)
    assert torch.equal(at_once.in_idx, loop.in_idx) and torch.equal(at_once.out_idx, loop.out_idx)
    assert at_once.in_idx.dtype == at_once.out_idx.dtype == torch.int32
    assert at_once.counts == loop.counts and sum(loop.counts) > 0
    assert (at_once.identity, at_once.mirror) == (loop.identity, loop.mirror)
    assert (at_once.in_unique, at_once.out_unique) == (loop.in_unique, loop.out_unique)
    # and both are the pairs a plain loop over coordinate tuples finds
    table = {tuple(r): i for i, r in enumerate(in_c.tolist())}
    expected = [
        (table[q], o)
        for off in offsets.tolist()
        for o, p in enumerate(out_c.tolist())
        if (q := (p[0], *[a + b for a, b in zip(p[1:], off, strict=True)])) in table
    ]
    assert list(zip(at_once.in_idx.tolist(), at_once.out_idx.tolist(), strict=True)) == expected


@pytest.mark.parametrize("identity", [True, False])
def test_padded_layout_holds_each_offsets_pairs_in_order(identity: bool) -> None:
    coords = random_coords(200, 3, 8, 1)
    offsets = KernelGenerator(3, dimension=3).region_offsets
    out_c = coords if identity else coords[::2].contiguous()
    kmap = kernel_map.build_kernel_map(coords, out_c, offsets, same_set=identity)
    ks, width, rows_in, rows_out = kmap.padded()
    assert ks == [k for k in range(27) if not identity or k != kmap.identity]
    assert width == max(kmap.counts[k] for k in ks)
    for j, k in enumerate(ks):
        ins, outs = kmap.pairs()[k]
        group_in, group_out = (
            rows_in[j * width : (j + 1) * width],
            rows_out[j * width : (j + 1) * width],
        )
        n = len(ins)
        assert group_in[:n].tolist() == ins.tolist() and group_out[:n].tolist() == outs.tolist()
        assert (group_in[n:] == kmap.num_in).all() and (group_out[n:] == kmap.num_out).all()


def _run(x: ME.SparseTensor, conv: torch.nn.Module, route: str, monkeypatch: pytest.MonkeyPatch,
         allow_batched: bool = False):  # fmt: skip
    """Forward and both gradients with one route forced (`allow_batched`: the batched route
    allowed, `route` expected); asserts the route taken."""
    taken: list[str] = []
    forward = conv_function.SparseConvolutionFunction.forward

    def spy(ctx, *args):
        out = forward(ctx, *args)
        taken.append(ctx.route)
        return out

    with monkeypatch.context() as m:
        m.setattr(conv_function.SparseConvolutionFunction, "forward", staticmethod(spy))
        m.setattr(conv_function, "_is_small", lambda feats, kmap: False)  # (these maps are small)
        if route == "general" and not allow_batched:
            m.setattr(conv_function, "BATCHED_SCALE", 0)
        else:  # strided maps of so few points pad more than the default allows
            m.setattr(conv_function, "BATCHED_MAX_PADDING", 1e9)
        feats = x.F.detach().clone().requires_grad_(True)
        conv.kernel.grad = None
        y = conv(ME.SparseTensor(feats, coordinates=x.C, tensor_stride=x.tensor_stride))
        weights = torch.linspace(-1, 1, y.F.numel(), dtype=y.F.dtype).view_as(y.F)
        (y.F * weights).sum().backward()
    assert taken == [route]
    return y.F.detach(), feats.grad, conv.kernel.grad.clone()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("kernel", "stride", "transpose"), [(3, 1, False), (3, 2, False), (2, 2, False), (3, 2, True)]
)
def test_batched_convolution_equals_general_routes(
    seed: int, kernel: int, stride: int, transpose: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    ts = 2 if transpose else 1
    coords = random_coords(150, 3, 7, seed)
    coords[:, 1:] *= ts
    feats = torch.randn(len(coords), 5, generator=torch.Generator().manual_seed(seed)).double()
    x = ME.SparseTensor(feats, coordinates=coords, tensor_stride=ts)
    if transpose:  # a coarser set to come back from: the map is the reversed strided one
        conv = ME.MinkowskiConvolutionTranspose(
            5, 4, kernel_size=kernel, stride=stride, dimension=3
        )
        down = ME.MinkowskiConvolution(5, 5, kernel_size=kernel, stride=stride, dimension=3)
        x = down.double()(x)
        x = ME.SparseTensor(x.F.detach(), coordinates=x.C, tensor_stride=x.tensor_stride)
    else:
        conv = ME.MinkowskiConvolution(5, 4, kernel_size=kernel, stride=stride, dimension=3)
    conv = conv.double()
    batched = _run(x, conv, "batched", monkeypatch)
    general = _run(x, conv, "general", monkeypatch)
    for a, b in zip(batched, general, strict=True):
        torch.testing.assert_close(a, b)
        assert a.abs().sum() > 0  # something was compared


def test_batched_convolution_only_gradients_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    coords = random_coords(150, 3, 7, 9)
    conv = ME.MinkowskiConvolution(4, 3, kernel_size=3, dimension=3).double()
    feats = torch.randn(len(coords), 4, dtype=torch.float64)
    x = ME.SparseTensor(feats, coordinates=coords)
    ref = _run(x, conv, "general", monkeypatch)
    monkeypatch.setattr(conv_function, "_is_small", lambda feats, kmap: False)
    conv.kernel.requires_grad_(False)  # only the input gradient
    f = feats.clone().requires_grad_(True)
    y = conv(ME.SparseTensor(f, coordinates=coords))
    (y.F * torch.linspace(-1, 1, y.F.numel(), dtype=y.F.dtype).view_as(y.F)).sum().backward()
    torch.testing.assert_close(f.grad, ref[1])
    conv.kernel.requires_grad_(True)
    conv.kernel.grad = None  # only the weight gradient
    y = conv(ME.SparseTensor(feats, coordinates=coords))
    (y.F * torch.linspace(-1, 1, y.F.numel(), dtype=y.F.dtype).view_as(y.F)).sum().backward()
    torch.testing.assert_close(conv.kernel.grad, ref[2])


def test_half_precision_takes_the_general_route_close_to_fp32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under bf16 autocast on CPU a map the batched route would take runs the general passes
    instead (their GEMM shapes are padded, `sparse.gemm_rows`), within bf16 rounding of fp32."""
    coords = random_coords(150, 3, 7, 3)
    x = ME.SparseTensor(torch.randn(len(coords), 8), coordinates=coords)
    conv = ME.MinkowskiConvolution(8, 8, kernel_size=3, dimension=3)
    fp32 = _run(x, conv, "batched", monkeypatch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = _run(x, conv, "general", monkeypatch, allow_batched=True)
    assert half[0].dtype == torch.bfloat16 and half[2].dtype == torch.float32
    for a, b in zip(half, fp32, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=0.05, atol=0.05)


def test_small_patch_elements_zero_turns_the_batched_route_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coords = random_coords(150, 3, 7, 3)
    x = ME.SparseTensor(torch.randn(len(coords), 8), coordinates=coords)
    conv = ME.MinkowskiConvolution(8, 8, kernel_size=3, dimension=3)
    kmap = x.coordinate_manager.kernel_map_for(
        x.coordinate_map_key, x.coordinate_map_key, conv.kernel_generator
    )
    assert conv_function._is_batched(x.F, conv.kernel, kmap)
    monkeypatch.setattr(conv_function, "SMALL_PATCH_ELEMENTS", 0)
    assert not conv_function._is_batched(x.F, conv.kernel, kmap)


def _cube_map(n: int) -> kernel_map.KernelMap:
    """3x3x3 same-set map of n random voxels at density 1/8 (`benchmarks/small_inputs.py`)."""
    g = torch.Generator().manual_seed(0)
    side = int((8 * n) ** (1 / 3)) + 1
    cells = torch.randperm(side**3, generator=g)[:n]
    xyz = torch.stack([cells // side**2, cells // side % side, cells % side], dim=1)
    coords = torch.cat([torch.zeros(n, 1, dtype=torch.long), xyz], dim=1).int()
    offsets = KernelGenerator(3, dimension=3).region_offsets
    return kernel_map.build_kernel_map(coords, coords, offsets, same_set=True)


def test_points_1k_takes_the_batched_route_and_10k_does_not() -> None:
    """The routes the benchmark rows exercise (random voxels at density 1/8, 16 channels)."""
    assert not conv_function._is_small(torch.zeros(1000, 16), _cube_map(1000))
    for n, expected in ((1000, True), (10000, False)):
        kmap = _cube_map(n)
        weight = torch.zeros(27, 16, 16)
        feats = torch.zeros(n, 16)
        assert conv_function._is_batched(feats, weight, kmap) is expected
