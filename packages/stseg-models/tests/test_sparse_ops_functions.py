"""MinkowskiEngine's autograd Function classes and spmm: values against the layers or slow
references, gradients with gradcheck in float64 (3D and 4D where the op has coordinates)."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import stseg_models.sparse as ME
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.modes import PoolingMode


def random_tensor(dim: int, channels: int, seed: int, n: int = 40) -> ME.SparseTensor:
    g = torch.Generator().manual_seed(seed)
    coords = torch.cat(
        [torch.randint(0, 2, (n, 1), generator=g), torch.randint(0, 4, (n, dim), generator=g)], 1
    )
    coords = torch.unique(coords, dim=0).int()
    feats = torch.randn(len(coords), channels, generator=g, dtype=torch.float64)
    return ME.SparseTensor(feats, coords)


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_()


@pytest.mark.parametrize(("dim", "k", "stride"), [(3, 3, 1), (3, 2, 2), (3, 1, 1), (4, 3, 2)])
def test_convolution_function_equals_layer_and_gradcheck(dim: int, k: int, stride: int) -> None:
    x = random_tensor(dim, 2, seed=k)
    conv = ME.MinkowskiConvolution(2, 3, kernel_size=k, stride=stride, dimension=dim).double()
    y = conv(x)
    args = (conv.kernel_generator, None, x.coordinate_map_key, None, x.coordinate_manager)
    out = ME.MinkowskiConvolutionFunction.apply(x.F, conv.kernel, *args)
    torch.testing.assert_close(out, y.F)
    # an explicit output key gives the same
    explicit = (*args[:3], y.coordinate_map_key, args[4])
    torch.testing.assert_close(
        ME.MinkowskiConvolutionFunction.apply(x.F, conv.kernel, *explicit), y.F
    )
    assert gradcheck(
        lambda f, w: ME.MinkowskiConvolutionFunction.apply(f, w, *args),
        (leaf(x.F), leaf(conv.kernel)),
    )


@pytest.mark.parametrize("dim", [3, 4])
def test_convolution_transpose_function_equals_layer_and_gradcheck(dim: int) -> None:
    x = random_tensor(dim, 2, seed=dim)
    down = ME.MinkowskiConvolution(2, 2, kernel_size=2, stride=2, dimension=dim).double()
    coarse = down(x)
    up = ME.MinkowskiConvolutionTranspose(2, 3, kernel_size=2, stride=2, dimension=dim).double()
    y = up(coarse)
    args = (up.kernel_generator, None, coarse.coordinate_map_key, None, coarse.coordinate_manager)
    out = ME.MinkowskiConvolutionTransposeFunction.apply(coarse.F, up.kernel, *args)
    torch.testing.assert_close(out, y.F)
    assert gradcheck(
        lambda f, w: ME.MinkowskiConvolutionTransposeFunction.apply(f, w, *args),
        (leaf(coarse.F), leaf(up.kernel)),
    )


def test_convolution_transpose_function_generates_a_missing_finer_set() -> None:
    """A tensor created at tensor_stride=2: no set at stride 1, so the Function (as the layer and
    MinkowskiEngine 0.5.4, which gives 24 rows here) writes onto the kernel footprint it generates."""
    coords = torch.tensor([[0, 0, 0, 0], [0, 2, 0, 0], [0, 2, 2, 4]], dtype=torch.int32)
    feats = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    up = ME.MinkowskiConvolutionTranspose(2, 1, kernel_size=2, stride=2, dimension=3).double()
    y = up(ME.SparseTensor(feats, coords, tensor_stride=2))
    x = ME.SparseTensor(feats, coords, tensor_stride=2)
    out = ME.MinkowskiConvolutionTransposeFunction.apply(
        x.F, up.kernel, up.kernel_generator, None, x.coordinate_map_key, None, x.coordinate_manager
    )
    assert out.shape == (24, 1) and y.F.shape == (24, 1)  # 3 coordinates x 8 disjoint offsets
    torch.testing.assert_close(out, y.F)
    key = ME.CoordinateMapKey([1, 1, 1], "")
    assert key in x.coordinate_manager.get_coordinate_map_keys()
    assert x.coordinate_manager.get_coordinates(key).shape == (24, 4)


@pytest.mark.parametrize(
    ("layer", "mode"),
    [
        ("MinkowskiMaxPooling", PoolingMode.LOCAL_MAX_POOLING),
        ("MinkowskiAvgPooling", PoolingMode.LOCAL_AVG_POOLING),
        ("MinkowskiSumPooling", PoolingMode.LOCAL_SUM_POOLING),
    ],
)
@pytest.mark.parametrize(("dim", "k", "stride"), [(3, 3, 2), (3, 2, 2), (4, 3, 1)])
def test_local_pooling_function_equals_layer_and_gradcheck(
    layer: str, mode: PoolingMode, dim: int, k: int, stride: int
) -> None:
    x = random_tensor(dim, 2, seed=dim + k)
    pool = getattr(ME, layer)(kernel_size=k, stride=stride, dimension=dim)
    y = pool(x)
    args = (mode, pool.kernel_generator, x.coordinate_map_key, None, x.coordinate_manager)
    torch.testing.assert_close(ME.MinkowskiLocalPoolingFunction.apply(x.F, *args), y.F)
    assert gradcheck(lambda f: ME.MinkowskiLocalPoolingFunction.apply(f, *args), (leaf(x.F),))


def test_local_max_pooling_function_empty_output_is_lowest_value_as_layer() -> None:
    """Kernel 3, stride 4: the output x = 0 has no input in its window; the Function gives the
    dtype's lowest value there, as the layer and MinkowskiEngine 0.5.4 do (not 0)."""
    coords = torch.tensor([[0, 2, 0, 0], [0, 3, 0, 0], [0, 4, 0, 0]], dtype=torch.int32)
    feats = torch.tensor([[1.0], [2.0], [-5.0]], dtype=torch.float64, requires_grad=True)
    x = ME.SparseTensor(feats, coords)
    pool = ME.MinkowskiMaxPooling(kernel_size=3, stride=4, dimension=3)
    y = pool(x)
    args = (PoolingMode.LOCAL_MAX_POOLING, pool.kernel_generator, x.coordinate_map_key, None,
            x.coordinate_manager)  # fmt: skip
    out = ME.MinkowskiLocalPoolingFunction.apply(feats, *args)
    assert sorted(out[:, 0].tolist()) == [torch.finfo(torch.float64).min, 2.0]
    torch.testing.assert_close(out, y.F)
    out.sum().backward()
    assert feats.grad.flatten().tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("mode", [PoolingMode.LOCAL_AVG_POOLING, PoolingMode.LOCAL_SUM_POOLING])
def test_local_pooling_transpose_function(mode: PoolingMode) -> None:
    x = random_tensor(3, 2, seed=3)
    coarse = ME.MinkowskiAvgPooling(kernel_size=2, stride=2, dimension=3)(x)
    unpool = ME.MinkowskiPoolingTranspose(kernel_size=2, stride=2, dimension=3)
    args = (
        mode,
        unpool.kernel_generator,
        coarse.coordinate_map_key,
        None,
        coarse.coordinate_manager,
    )
    out = ME.MinkowskiLocalPoolingTransposeFunction.apply(coarse.F, *args)
    if mode == PoolingMode.LOCAL_AVG_POOLING:
        torch.testing.assert_close(out, unpool(coarse).F)
    # slow reference: each fine row sums the coarse rows whose kernel reaches it
    rows = {tuple(c): i for i, c in enumerate(coarse.C.tolist())}
    expected = torch.zeros(len(x), 2, dtype=torch.float64)
    counts = torch.zeros(len(x), 1, dtype=torch.float64)
    for i, c in enumerate(x.C.tolist()):
        parent = (c[0], *(v // 2 * 2 for v in c[1:]))
        expected[i] += coarse.F[rows[parent]]
        counts[i] += 1
    if mode == PoolingMode.LOCAL_AVG_POOLING:
        expected = expected / counts
    torch.testing.assert_close(out, expected)
    assert gradcheck(
        lambda f: ME.MinkowskiLocalPoolingTransposeFunction.apply(f, *args), (leaf(coarse.F),)
    )


@pytest.mark.parametrize("kind", ["sum", "avg", "max"])
@pytest.mark.parametrize("dim", [3, 4])
def test_global_pooling_function_equals_reference_and_gradcheck(kind: str, dim: int) -> None:
    x = random_tensor(dim, 3, seed=dim)
    mode = getattr(PoolingMode, f"GLOBAL_{kind.upper()}_POOLING_DEFAULT")
    args = (mode, x.coordinate_map_key, None, x.coordinate_manager)
    out = ME.MinkowskiGlobalPoolingFunction.apply(x.F, *args)
    batch = x.C[:, 0].tolist()
    reduce = {"sum": lambda f: f.sum(0), "avg": lambda f: f.mean(0), "max": lambda f: f.amax(0)}
    expected = torch.stack(
        [reduce[kind](x.F[[i for i, v in enumerate(batch) if v == b]]) for b in sorted(set(batch))]
    )
    torch.testing.assert_close(out, expected)
    assert gradcheck(lambda f: ME.MinkowskiGlobalPoolingFunction.apply(f, *args), (leaf(x.F),))


def test_direct_max_pooling_function_equals_reference_and_gradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    in_map = torch.randint(0, 5, (12,), generator=g).int()
    out_map = torch.randint(0, 4, (12,), generator=g).int()
    out_map[out_map == 3] = 2  # output row 3 gets no pair: zeros
    feats = torch.rand(5, 6, generator=g, dtype=torch.float64)
    out = ME.MinkowskiDirectMaxPoolingFunction.apply(in_map, out_map, feats, 4)
    expected = torch.zeros(4, 6, dtype=torch.float64)
    for o in range(4):
        ins = [int(i) for i, oo in zip(in_map, out_map, strict=True) if int(oo) == o]
        if ins:
            expected[o] = feats[ins].amax(0)
    torch.testing.assert_close(out, expected)
    assert gradcheck(
        lambda f: ME.MinkowskiDirectMaxPoolingFunction.apply(in_map, out_map, f, 4), (leaf(feats),)
    )
    with pytest.raises(SparseInputError, match="out_map"):
        ME.MinkowskiDirectMaxPoolingFunction.apply(in_map, out_map, feats, 2)


def test_spmm_equals_dense_product_and_gradcheck() -> None:
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(0, 6, (20,), generator=g)
    cols = torch.randint(0, 5, (20,), generator=g)
    vals = torch.randn(20, generator=g, dtype=torch.float64)
    mat = torch.randn(5, 3, generator=g, dtype=torch.float64)
    dense = torch.zeros(6, 5, dtype=torch.float64)
    for r, c, v in zip(rows.tolist(), cols.tolist(), vals.tolist(), strict=True):
        dense[r, c] += v
    size = torch.Size([6, 5])
    torch.testing.assert_close(ME.spmm(rows, cols, vals, size, mat), dense @ mat)
    torch.testing.assert_close(
        ME.MinkowskiSPMMFunction.apply(rows, cols, vals, size, mat), dense @ mat
    )
    assert gradcheck(
        lambda m: ME.MinkowskiSPMMFunction.apply(rows, cols, vals, size, m), (leaf(mat),)
    )
    # row-averaging variant: each row's pairs weigh 1 / (pairs in that row)
    count = torch.zeros(6, 5, dtype=torch.float64)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        count[r, c] += 1
    average = count / count.sum(1, keepdim=True).clamp(min=1)
    torch.testing.assert_close(
        ME.MinkowskiSPMMAverageFunction.apply(rows, cols, size, mat), average @ mat
    )
    assert gradcheck(
        lambda m: ME.MinkowskiSPMMAverageFunction.apply(rows, cols, size, m), (leaf(mat),)
    )
    with pytest.raises(SparseInputError, match="mat must be"):
        ME.spmm(rows, cols, vals, torch.Size([6, 4]), mat)
