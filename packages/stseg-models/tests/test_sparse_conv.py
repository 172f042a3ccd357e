"""Convolution and transposed convolution against slow loop and dense references."""

from __future__ import annotations

import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.sparse.conv_function import sparse_conv
from stseg_models.sparse.reference import (
    conv_reference,
    coord_dict,
    dense_conv3d_reference,
    strided_coords,
    transposed_conv_reference,
)

CUBE, CROSS = ME.RegionType.HYPER_CUBE, ME.RegionType.HYPER_CROSS


def random_sparse(
    n: int,
    dim: int,
    extent: int,
    channels: int,
    tensor_stride: int = 1,
    seed: int = 0,
    batches: int = 2,
):
    """Unique random coordinates (multiples of tensor_stride) over `batches` scenes, float64 features."""
    g = torch.Generator().manual_seed(seed)
    spatial = torch.randint(0, extent, (n, dim), generator=g) * tensor_stride
    batch = torch.randint(0, batches, (n, 1), generator=g)
    coords = torch.unique(torch.cat([batch, spatial], dim=1), dim=0).int()
    feats = torch.randn(coords.shape[0], channels, generator=g, dtype=torch.float64)
    return ME.SparseTensor(feats, coords, tensor_stride=tensor_stride)


def weight3d(conv: ME.MinkowskiConvolution) -> torch.Tensor:
    return conv.kernel if conv.kernel.dim() == 3 else conv.kernel.unsqueeze(0)


def aligned(rows: torch.Tensor, reference_rows: torch.Tensor) -> torch.Tensor:
    """Permutation p with reference_rows[p] == rows."""
    table = coord_dict(reference_rows)
    return torch.tensor([table[tuple(r)] for r in rows.tolist()])


CASES = [
    # dim, kernel, stride, dilation, region, tensor_stride
    (3, 1, 1, 1, CUBE, 1),
    (3, 2, 2, 1, CUBE, 1),
    (3, 3, 1, 1, CUBE, 1),
    (3, 3, 1, 2, CUBE, 1),
    (3, 3, 2, 1, CUBE, 2),
    (3, 3, 4, 1, CUBE, 1),
    (3, 5, 1, 1, CUBE, 1),
    (3, 5, 1, 2, CROSS, 1),
    (3, 3, 1, 1, CROSS, 2),
    (3, 2, 4, 2, CUBE, 1),
    (3, 1, 2, 1, CUBE, 1),
    (4, 3, 1, 1, CUBE, 1),
    (4, 2, 2, 1, CUBE, 1),
    (4, 3, 1, 1, CROSS, 1),
    (4, 3, 1, 2, "hybrid", 1),
    (4, 3, 2, 1, "hybrid", 2),
    (4, 5, 1, 1, CUBE, 1),
    (4, 3, 4, 1, CUBE, 1),
]


def make_generator(dim: int, k: int, stride: int, dilation: int, region) -> ME.KernelGenerator:
    if region == "hybrid":
        return ME.KernelGenerator(
            k, stride, dilation, axis_types=[CUBE] * (dim - 1) + [CROSS], dimension=dim
        )
    return ME.KernelGenerator(k, stride, dilation, region_type=region, dimension=dim)


@pytest.mark.parametrize(("dim", "k", "stride", "dilation", "region", "ts"), CASES)
def test_conv_matches_loop_reference(
    dim: int, k: int, stride: int, dilation: int, region, ts: int
) -> None:
    x = random_sparse(60 if dim == 3 else 50, dim, 5, 3, tensor_stride=ts, seed=k * 10 + stride)
    gen = make_generator(dim, k, stride, dilation, region)
    conv = ME.MinkowskiConvolution(3, 4, kernel_generator=gen, bias=True, dimension=dim).double()
    y = conv(x)
    assert y.tensor_stride == [ts * stride] * dim
    if stride == 1:
        assert y.coordinate_map_key == x.coordinate_map_key
    assert {tuple(r) for r in y.C.tolist()} == strided_coords(x.C, [ts * stride] * dim)
    assert len({tuple(r) for r in y.C.tolist()}) == len(y)
    expected = (
        conv_reference(x.F, x.C, y.C, weight3d(conv), gen.offsets, [ts * dilation] * dim)
        + conv.bias
    )
    torch.testing.assert_close(y.F, expected)


@pytest.mark.parametrize(
    ("dim", "k", "stride", "dilation", "region"),
    [
        (3, 2, 2, 1, CUBE),
        (3, 3, 2, 1, CUBE),
        (3, 3, 1, 1, CUBE),
        (3, 2, 4, 1, CUBE),
        (3, 3, 2, 2, CROSS),
        (4, 2, 2, 1, CUBE),
        (4, 3, 2, 1, "hybrid"),
    ],
)
def test_transposed_conv_matches_loop_reference(
    dim: int, k: int, stride: int, dilation: int, region
) -> None:
    x = random_sparse(60, dim, 6, 3, seed=dim + k)
    down = ME.MinkowskiConvolution(3, 4, kernel_size=2, stride=stride, dimension=dim).double()
    y = down(x)
    gen = make_generator(dim, k, stride, dilation, region)
    up = ME.MinkowskiConvolutionTranspose(4, 5, kernel_generator=gen, dimension=dim).double()
    z = up(y)
    assert z.coordinate_map_key == x.coordinate_map_key
    assert torch.equal(z.C, x.C)
    expected = transposed_conv_reference(y.F, y.C, x.C, weight3d(up), gen.offsets, [dilation] * dim)
    torch.testing.assert_close(z.F, expected)


def test_conv_matches_dense_convolution() -> None:
    g = torch.Generator().manual_seed(3)
    grid = torch.randn(2, 5, 4, 6, generator=g, dtype=torch.float64)
    coords = torch.cartesian_prod(torch.arange(5), torch.arange(4), torch.arange(6))
    coords = torch.cat([torch.zeros(len(coords), 1, dtype=torch.long), coords], dim=1).int()
    feats = grid[:, coords[:, 1], coords[:, 2], coords[:, 3]].t().contiguous()
    conv = ME.MinkowskiConvolution(2, 3, kernel_size=3, dimension=3).double()
    y = conv(ME.SparseTensor(feats, coords))
    dense = dense_conv3d_reference(grid, conv.kernel, conv.kernel_generator.offsets)
    torch.testing.assert_close(y.F, dense[:, coords[:, 1], coords[:, 2], coords[:, 3]].t())


@pytest.mark.parametrize(
    "case", ["conv_s1", "conv_s2", "conv_k2s2", "conv_dilated", "transpose", "transpose_k2s2"]
)
def test_gradcheck(case: str) -> None:
    x = random_sparse(14, 3, 3, 2, seed=7)
    manager, key = x.coordinate_manager, x.coordinate_map_key
    if case.startswith("transpose"):
        k = 2 if case.endswith("k2s2") else 3
        layer = ME.MinkowskiConvolutionTranspose(2, 3, kernel_size=k, stride=2, dimension=3)
        key = manager.stride(key, (2, 2, 2))  # the coarse input; the finer set already exists
    elif case in ("conv_s2", "conv_k2s2"):
        k = 2 if case == "conv_k2s2" else 3
        layer = ME.MinkowskiConvolution(2, 3, kernel_size=k, stride=2, dimension=3)
    elif case == "conv_dilated":
        layer = ME.MinkowskiConvolution(2, 3, kernel_size=2, dilation=2, dimension=3)
    else:
        layer = ME.MinkowskiConvolution(2, 3, kernel_size=3, dimension=3)
    layer = layer.double()
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(manager.size(key), 2, generator=g, dtype=torch.float64, requires_grad=True)
    weight = layer.kernel.detach().clone().requires_grad_(True)

    def fn(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # same forward as the module, with the weight as an explicit input so gradcheck perturbs it
        kmap = manager.kernel_map(
            key,
            layer._out_key(ME.SparseTensor(f, coordinate_map_key=key, coordinate_manager=manager)),
            layer.kernel_generator,
            layer.is_transpose,
        )
        return sparse_conv(f, w, kmap)

    assert fn(feats, weight).abs().sum() > 0
    assert torch.autograd.gradcheck(fn, (feats, weight))


def test_module_gradient_equals_functional() -> None:
    x = random_sparse(30, 3, 4, 2, seed=3)
    conv = ME.MinkowskiConvolution(2, 3, kernel_size=3, bias=True, dimension=3).double()
    feats = x.F.clone().requires_grad_(True)
    y = conv(
        ME.SparseTensor(
            feats, coordinate_map_key=x.coordinate_map_key, coordinate_manager=x.coordinate_manager
        )
    )
    y.F.square().sum().backward()
    # reference: autograd through the loop implementation
    feats2 = x.F.clone().requires_grad_(True)
    w2 = conv.kernel.detach().clone().requires_grad_(True)
    ref = (
        conv_reference(feats2, x.C, x.C, w2, conv.kernel_generator.offsets, [1, 1, 1])
        + conv.bias.detach()
    )
    ref.square().sum().backward()
    torch.testing.assert_close(feats.grad, feats2.grad)
    torch.testing.assert_close(conv.kernel.grad, w2.grad)


def test_unet_round_trip_lands_on_original_rows() -> None:
    x = random_sparse(200, 3, 8, 4, seed=11).float()
    down1 = ME.MinkowskiConvolution(4, 8, kernel_size=2, stride=2, dimension=3)
    down2 = ME.MinkowskiConvolution(8, 8, kernel_size=3, stride=2, dimension=3)
    up2 = ME.MinkowskiConvolutionTranspose(8, 8, kernel_size=2, stride=2, dimension=3)
    up1 = ME.MinkowskiConvolutionTranspose(16, 4, kernel_size=2, stride=2, dimension=3)
    d1 = down1(x)
    d2 = down2(d1)
    u2 = up2(d2)
    assert u2.coordinate_map_key == d1.coordinate_map_key and torch.equal(u2.C, d1.C)
    u1 = up1(ME.cat(u2, d1))
    assert u1.coordinate_map_key == x.coordinate_map_key and torch.equal(u1.C, x.C)
    out = ME.cat(u1, x)
    assert out.F.shape == (len(x), 8)
    out.F.sum().backward()
    assert down1.kernel.grad is not None and float(down1.kernel.grad.abs().sum()) > 0


def test_kernel_maps_cached_once() -> None:
    x = random_sparse(80, 3, 6, 4, seed=2).float()
    conv_a = ME.MinkowskiConvolution(4, 4, kernel_size=3, dimension=3)
    conv_b = ME.MinkowskiConvolution(4, 4, kernel_size=3, dimension=3)
    manager = x.coordinate_manager
    conv_b(conv_a(x))
    assert len(manager._kernel_maps) == 1
    s1 = ME.MinkowskiConvolution(4, 4, kernel_size=2, stride=2, dimension=3)(x)
    s2 = ME.MinkowskiMaxPooling(2, 2, dimension=3)(x)
    assert s1.coordinate_map_key == s2.coordinate_map_key
    assert len(manager._kernel_maps) == 2


def test_state_dict_names_match_minkowski() -> None:
    conv = ME.MinkowskiConvolution(3, 32, kernel_size=3, dimension=3)
    one = ME.MinkowskiConvolution(192, 128, kernel_size=1, dimension=3)
    final = ME.MinkowskiConvolution(96, 20, kernel_size=1, bias=True, dimension=3)
    bn = ME.MinkowskiBatchNorm(32)
    assert {k: tuple(v.shape) for k, v in conv.state_dict().items()} == {"kernel": (27, 3, 32)}
    assert tuple(one.kernel.shape) == (192, 128)
    assert {k: tuple(v.shape) for k, v in final.state_dict().items()} == {
        "kernel": (96, 20),
        "bias": (1, 20),
    }
    assert list(bn.state_dict()) == [
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    ]


def test_conv_bad_inputs() -> None:
    x = random_sparse(20, 3, 4, 3).float()
    with pytest.raises(ME.SparseInputError, match="expects 4 input channels"):
        ME.MinkowskiConvolution(4, 4, kernel_size=3, dimension=3)(x)
    with pytest.raises(ME.SparseInputError, match="4-dimensional"):
        ME.MinkowskiConvolution(3, 4, kernel_size=3, dimension=4)(x)
    with pytest.raises(ME.SparseInputError, match="SparseTensor"):
        ME.MinkowskiConvolution(3, 4, kernel_size=3, dimension=3)(x.F)
    with pytest.raises(ME.SparseInputError, match="does not divide"):
        ME.MinkowskiConvolutionTranspose(3, 4, kernel_size=2, stride=2, dimension=3)(x)
    # a transposed convolution on a tensor created at stride 2 (no finer set) generates its
    # outputs, as MinkowskiEngine does: see test_sparse_coords_generative.py
    other = random_sparse(20, 3, 4, 3, seed=5).float()
    with pytest.raises(ME.SparseInputError, match="different coordinate managers"):
        ME.cat(x, other)


@pytest.mark.parametrize("stride", [1, 2])
def test_many_chunks_equal_one_chunk(monkeypatch: pytest.MonkeyPatch, stride: int) -> None:
    """Tiny pair buffers force the chunked path through many chunks; results must not change."""
    import stseg_models.sparse.conv_function as cf

    x = random_sparse(120, 3, 6, 3, seed=21)
    conv = ME.MinkowskiConvolution(3, 4, kernel_size=3, stride=stride, dimension=3).double()
    feats = x.F.clone().requires_grad_(True)
    y = conv(
        ME.SparseTensor(
            feats, coordinate_map_key=x.coordinate_map_key, coordinate_manager=x.coordinate_manager
        )
    )
    y.F.square().sum().backward()
    ref_out, ref_gf, ref_gw = y.F.detach(), feats.grad.clone(), conv.kernel.grad.clone()
    monkeypatch.setattr(cf, "SMALL_PATCH_ELEMENTS", 0)  # chunked routes vs the small-map route
    monkeypatch.setattr(cf, "CPU_PAIR_ELEMENTS", 40)
    monkeypatch.setattr(cf, "GATHER_ELEMENTS", 24)
    monkeypatch.setattr(cf, "DIRECT_BUFFER_ELEMENTS", 40)
    conv.kernel.grad = None
    x2 = random_sparse(120, 3, 6, 3, seed=21)  # fresh manager: fresh plans
    feats2 = x2.F.clone().requires_grad_(True)
    y2 = conv(
        ME.SparseTensor(
            feats2,
            coordinate_map_key=x2.coordinate_map_key,
            coordinate_manager=x2.coordinate_manager,
        )
    )
    kmap = next(iter(x2.coordinate_manager._kernel_maps.values()))
    assert len(kmap.plan(cf._pairs_per_chunk(4, cf.CPU_PAIR_ELEMENTS)).chunks) > 5
    y2.F.square().sum().backward()
    torch.testing.assert_close(y2.F, ref_out)
    torch.testing.assert_close(feats2.grad, ref_gf)
    torch.testing.assert_close(conv.kernel.grad, ref_gw)


def test_reversed_map_mirror_shortcut_equals_sort() -> None:
    x = random_sparse(80, 3, 5, 1, seed=4)
    gen = ME.KernelGenerator(3, dimension=3)
    kmap = x.coordinate_manager.kernel_map(x.coordinate_map_key, x.coordinate_map_key, gen)
    assert kmap.mirror is not None
    fast = kmap.reversed()
    kmap._reversed, kmap.mirror = None, None
    slow = kmap.reversed()
    assert fast.counts == slow.counts
    assert torch.equal(fast.in_idx, slow.in_idx) and torch.equal(fast.out_idx, slow.out_idx)


@pytest.mark.parametrize("num_rows", [40, 2**23 + 1])
def test_bag_layout_equals_stable_sort(num_rows: int) -> None:
    from stseg_models.sparse.scatter_plan import bag_layout

    g = torch.Generator().manual_seed(0)
    rows = [torch.sort(torch.randperm(40, generator=g)[:15]).values + 7 for _ in range(3)]
    order, offsets = bag_layout(rows, 7, num_rows)
    flat = torch.cat(rows) - 7
    assert order.dtype == offsets.dtype == torch.int32
    assert torch.equal(order.long(), torch.sort(flat, stable=True).indices)
    count = torch.bincount(flat, minlength=num_rows)
    assert torch.equal(offsets.long(), torch.cumsum(count, 0) - count)


def _conv_grads(x: ME.SparseTensor, conv: ME.MinkowskiConvolution) -> tuple[torch.Tensor, ...]:
    feats = x.F.detach().clone().requires_grad_(True)
    conv.kernel.grad = None
    y = conv(
        ME.SparseTensor(
            feats, coordinate_map_key=x.coordinate_map_key, coordinate_manager=x.coordinate_manager
        )
    )
    (y.F * torch.linspace(-1, 1, y.F.numel(), dtype=y.F.dtype).view_as(y.F)).sum().backward()
    return y.F.detach(), feats.grad, conv.kernel.grad.clone()


@pytest.mark.parametrize(("k", "stride"), [(3, 1), (2, 2)])
def test_backward_shortcuts_equal_reversed_map(
    k: int, stride: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mirror (same-set, symmetric) and direct (unique input rows) backward routes must give
    the gradients of the general route through the sorted reversed map."""
    from stseg_models.sparse import conv_function

    monkeypatch.setattr(conv_function, "SMALL_PATCH_ELEMENTS", 0)  # the routes of larger maps
    conv = ME.MinkowskiConvolution(3, 4, kernel_size=k, stride=stride, dimension=3).double()
    fast = _conv_grads(random_sparse(150, 3, 6, 3, seed=31), conv)
    x = random_sparse(150, 3, 6, 3, seed=31)
    conv(x)  # builds the map, then strip what the shortcuts rely on
    kmap = next(iter(x.coordinate_manager._kernel_maps.values()))
    assert (kmap.mirror is not None) if stride == 1 else kmap.in_unique
    kmap.mirror, kmap.in_unique = None, False
    slow = _conv_grads(x, conv)
    assert kmap._reversed is not None and kmap._reversed.out_sorted
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b)


def test_strided_map_flags_and_shared_transpose() -> None:
    x = random_sparse(150, 3, 6, 3, seed=8).float()
    down = ME.MinkowskiConvolution(3, 4, kernel_size=2, stride=2, dimension=3)
    up = ME.MinkowskiConvolutionTranspose(4, 3, kernel_size=2, stride=2, dimension=3)
    y = up(down(x))
    assert y.coordinate_map_key == x.coordinate_map_key
    maps = list(x.coordinate_manager._kernel_maps.values())
    assert len(maps) == 2
    fwd, tr = maps
    assert fwd.in_idx.dtype == fwd.out_idx.dtype == torch.int32
    assert fwd.in_unique and not fwd.out_unique and sum(fwd.counts) == len(x)
    assert tr.out_unique and not tr.in_unique and tr._reversed is fwd
    # the transpose is the forward map's tensors swapped, not a copy
    assert tr.in_idx.data_ptr() == fwd.out_idx.data_ptr()
    assert tr.out_idx.data_ptr() == fwd.in_idx.data_ptr()
    same = x.coordinate_manager.kernel_map(
        x.coordinate_map_key, x.coordinate_map_key, ME.KernelGenerator(3, dimension=3)
    )
    assert not same.in_unique and not same.out_unique and same.mirror is not None


@pytest.mark.parametrize("dim", [3, 4])
def test_patch_pass_equals_reduce_pass(monkeypatch: pytest.MonkeyPatch, dim: int) -> None:
    """A strided size-2 convolution's forward and its transpose's input gradient run as patch
    GEMMs (each input row has one pair); values and both gradients must equal the reduce route,
    also when the patches are gathered in many small pieces."""
    import stseg_models.sparse.conv_function as cf

    torch.manual_seed(0)
    down = ME.MinkowskiConvolution(3, 4, kernel_size=2, stride=2, dimension=dim).double()
    up = ME.MinkowskiConvolutionTranspose(4, 5, kernel_size=2, stride=2, dimension=dim).double()
    calls = []
    patch = cf._patch_pass

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return patch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cf, "_patch_pass", counted)
    monkeypatch.setattr(cf, "SMALL_PATCH_ELEMENTS", 0)  # the routes of larger maps

    def run(min_fill: float, gather: int) -> list[torch.Tensor]:
        monkeypatch.setattr(cf, "PATCH_MIN_FILL", min_fill)
        monkeypatch.setattr(cf, "GATHER_ELEMENTS", gather)
        x = random_sparse(300, dim, 5, 3, seed=41)  # fresh manager: fresh maps
        feats = x.F.clone().requires_grad_(True)
        for layer in (down, up):
            layer.kernel.grad = None
        t = ME.SparseTensor(
            feats, coordinate_map_key=x.coordinate_map_key, coordinate_manager=x.coordinate_manager
        )
        y = up(down(t))
        (y.F * torch.linspace(-1, 1, y.F.numel(), dtype=y.F.dtype).view_as(y.F)).sum().backward()
        assert down.kernel.grad is not None and up.kernel.grad is not None
        return [y.F.detach(), feats.grad, down.kernel.grad.clone(), up.kernel.grad.clone()]

    reference = run(2.0, 2**20)  # fill can never reach 2: no patch pass
    assert not calls
    for gather in (2**20, 40):
        got = run(0.0, gather)
        assert len(calls) == 2  # the strided forward and the transpose's input gradient
        calls.clear()
        for a, b in zip(got, reference, strict=True):
            torch.testing.assert_close(a, b)


def test_patch_pass_gradcheck(monkeypatch: pytest.MonkeyPatch) -> None:
    import stseg_models.sparse.conv_function as cf

    monkeypatch.setattr(cf, "PATCH_MIN_FILL", 0.0)
    monkeypatch.setattr(cf, "SMALL_PATCH_ELEMENTS", 0)  # the patch pass, not the small-map route
    x = random_sparse(14, 3, 3, 2, seed=7)
    manager, fine = x.coordinate_manager, x.coordinate_map_key
    coarse = manager.stride(fine, (2, 2, 2))
    gen = ME.KernelGenerator(2, stride=2, dimension=3)
    down = manager.kernel_map(fine, coarse, gen, False)
    up = manager.kernel_map(coarse, fine, gen, True)
    assert down.in_unique and up.out_unique
    g = torch.Generator().manual_seed(2)
    w = torch.randn(8, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    f_fine = torch.randn(len(x), 2, generator=g, dtype=torch.float64, requires_grad=True)
    f_coarse = torch.randn(down.num_out, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, w: sparse_conv(f, w, down), (f_fine, w))
    assert torch.autograd.gradcheck(lambda f, w: sparse_conv(f, w, up), (f_coarse, w))
