"""Local, transposed and global pooling against loop references; gradients in float64."""

from __future__ import annotations

import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.sparse.reference import pool_reference, strided_coords

CUBE, CROSS = ME.RegionType.HYPER_CUBE, ME.RegionType.HYPER_CROSS
LAYERS = {
    "max": ME.MinkowskiMaxPooling,
    "avg": ME.MinkowskiAvgPooling,
    "sum": ME.MinkowskiSumPooling,
}


def random_sparse(
    n: int, dim: int, extent: int, channels: int, seed: int = 0, tensor_stride: int = 1
) -> ME.SparseTensor:
    g = torch.Generator().manual_seed(seed)
    spatial = torch.randint(0, extent, (n, dim), generator=g) * tensor_stride
    batch = torch.randint(0, 2, (n, 1), generator=g)
    coords = torch.unique(torch.cat([batch, spatial], dim=1), dim=0).int()
    return ME.SparseTensor(
        torch.randn(len(coords), channels, generator=g, dtype=torch.float64),
        coords,
        tensor_stride=tensor_stride,
    )


@pytest.mark.parametrize("mode", ["max", "avg", "sum"])
@pytest.mark.parametrize(
    ("dim", "k", "stride", "dilation", "ts"),
    [
        (3, 2, 2, 1, 1),
        (3, 3, 1, 1, 1),
        (3, 3, 2, 2, 2),
        (3, 5, 4, 1, 1),
        (4, 2, 2, 1, 1),
        (4, 3, 1, 1, 1),
    ],
)
def test_local_pooling_matches_reference(
    mode: str, dim: int, k: int, stride: int, dilation: int, ts: int
) -> None:
    x = random_sparse(50, dim, 5, 3, seed=k + stride, tensor_stride=ts)
    layer = LAYERS[mode](kernel_size=k, stride=stride, dilation=dilation, dimension=dim)
    y = layer(x)
    assert {tuple(r) for r in y.C.tolist()} == strided_coords(x.C, [ts * stride] * dim)
    expected = pool_reference(
        x.F, x.C, y.C, layer.kernel_generator.offsets, [ts * dilation] * dim, mode
    )
    torch.testing.assert_close(y.F, expected)


def test_hypercross_pooling() -> None:
    x = random_sparse(50, 3, 5, 2, seed=4)
    gen = ME.KernelGenerator(3, region_type=CROSS, dimension=3)
    y = ME.MinkowskiSumPooling(kernel_size=3, kernel_generator=gen, dimension=3)(x)
    torch.testing.assert_close(y.F, pool_reference(x.F, x.C, y.C, gen.offsets, [1, 1, 1], "sum"))


def test_max_pool_gradient_goes_to_argmax() -> None:
    coords = torch.tensor([[0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 2, 2]], dtype=torch.int32)
    feats = torch.tensor([[1.0, 5.0], [3.0, 2.0], [2.0, 2.0], [7.0, 1.0]], requires_grad=True)
    x = ME.SparseTensor(feats, coords)
    y = ME.MinkowskiMaxPooling(kernel_size=2, stride=2, dimension=2)(x)
    assert y.C.tolist() == [[0, 0, 0], [0, 2, 2]]
    assert y.F.tolist() == [[3.0, 5.0], [7.0, 1.0]]
    y.F.sum().backward()
    assert feats.grad.tolist() == [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize(
    "mode", ["max", "avg", "sum", "transpose", "global_avg", "global_max", "global_sum"]
)
def test_pooling_gradcheck(mode: str) -> None:
    x = random_sparse(16, 3, 3, 2, seed=9)
    manager, key = x.coordinate_manager, x.coordinate_map_key
    if mode in LAYERS:
        layer = LAYERS[mode](kernel_size=3, stride=2, dimension=3)
    elif mode == "transpose":
        ME.MinkowskiSumPooling(2, 2, dimension=3)(x)
        key = manager.stride(key, (2, 2, 2))
        layer = ME.MinkowskiPoolingTranspose(kernel_size=2, stride=2, dimension=3)
    else:
        layer = {
            "global_avg": ME.MinkowskiGlobalAvgPooling,
            "global_max": ME.MinkowskiGlobalMaxPooling,
            "global_sum": ME.MinkowskiGlobalSumPooling,
        }[mode]()
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(manager.size(key), 2, generator=g, dtype=torch.float64, requires_grad=True)

    def fn(f: torch.Tensor) -> torch.Tensor:
        return layer(ME.SparseTensor(f, coordinate_map_key=key, coordinate_manager=manager)).F

    assert torch.autograd.gradcheck(fn, (feats,))


def test_pooling_transpose_copies_parent_onto_fine_rows() -> None:
    x = random_sparse(60, 3, 6, 2, seed=5)
    coarse = ME.MinkowskiAvgPooling(kernel_size=2, stride=2, dimension=3)(x)
    up = ME.MinkowskiPoolingTranspose(kernel_size=2, stride=2, dimension=3)(coarse)
    assert up.coordinate_map_key == x.coordinate_map_key
    parent = {tuple(r): i for i, r in enumerate(coarse.C.tolist())}
    rows = [parent[(r[0], *[(v // 2) * 2 for v in r[1:]])] for r in x.C.tolist()]
    torch.testing.assert_close(up.F, coarse.F[rows])


def test_global_pooling_values() -> None:
    coords = torch.tensor(
        [[1, 0, 0], [0, 1, 0], [1, 2, 2], [0, 3, 3], [0, 4, 4]], dtype=torch.int32
    )
    feats = torch.tensor([[1.0], [2.0], [3.0], [4.0], [9.0]])
    x = ME.SparseTensor(feats, coords)
    avg = ME.MinkowskiGlobalAvgPooling()(x)
    assert avg.C.tolist() == [[0, 0, 0], [1, 0, 0]]
    assert avg.F.flatten().tolist() == [5.0, 2.0]
    assert ME.MinkowskiGlobalMaxPooling()(x).F.flatten().tolist() == [9.0, 3.0]
    assert ME.MinkowskiGlobalSumPooling()(x).F.flatten().tolist() == [15.0, 4.0]


def test_global_pooling_mode_picks_the_reduction() -> None:
    """MinkowskiEngine 0.5.4: the reduction is the one `mode` names, whichever class holds it;
    each class's default mode is its PYTORCH_INDEX variant."""
    coords = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 2, 2], [0, 3, 3]], dtype=torch.int32)
    x = ME.SparseTensor(torch.tensor([[1.0], [2.0], [3.0], [4.0]]), coords)
    P = ME.PoolingMode
    expect = {"SUM": [6.0, 4.0], "AVG": [3.0, 2.0], "MAX": [4.0, 3.0]}
    for kind, values in expect.items():
        for variant in ("DEFAULT", "KERNEL", "PYTORCH_INDEX"):
            mode = P[f"GLOBAL_{kind}_POOLING_{variant}"]
            for cls in (ME.MinkowskiGlobalPooling, ME.MinkowskiGlobalMaxPooling):
                layer = cls(mode)
                assert layer.pooling_mode is mode
                assert layer(x).F.flatten().tolist() == values, (cls.__name__, mode)
    assert ME.MinkowskiGlobalPooling().pooling_mode is P.GLOBAL_AVG_POOLING_PYTORCH_INDEX
    assert ME.MinkowskiGlobalAvgPooling().pooling_mode is P.GLOBAL_AVG_POOLING_PYTORCH_INDEX
    assert ME.MinkowskiGlobalSumPooling().pooling_mode is P.GLOBAL_SUM_POOLING_PYTORCH_INDEX
    assert ME.MinkowskiGlobalMaxPooling().pooling_mode is P.GLOBAL_MAX_POOLING_PYTORCH_INDEX
    assert repr(ME.MinkowskiGlobalMaxPooling()) == (
        "MinkowskiGlobalMaxPooling(mode=PoolingMode.GLOBAL_MAX_POOLING_PYTORCH_INDEX)"
    )
    for bad in (P.LOCAL_MAX_POOLING, "max", 11):
        with pytest.raises(ME.SparseInputError, match="global PoolingMode"):
            ME.MinkowskiGlobalPooling(bad)


def test_max_pooling_kernel_smaller_than_stride_leaves_lowest_value() -> None:
    """Kernel 3, stride 4: inputs at x = 2, 3 make the output x = 0, whose window (-1..1) holds none
    of them; as MinkowskiEngine 0.5.4, that output is the dtype's lowest value, not 0."""
    coords = torch.tensor([[0, 2, 0, 0], [0, 3, 0, 0], [0, 4, 0, 0]], dtype=torch.int32)
    feats = torch.tensor([[1.0], [2.0], [-5.0]], dtype=torch.float64, requires_grad=True)
    y = ME.MinkowskiMaxPooling(kernel_size=3, stride=4, dimension=3)(ME.SparseTensor(feats, coords))
    got = {tuple(c): float(f) for c, f in zip(y.C.tolist(), y.F[:, 0].tolist())}
    # the output x = 4 reaches x = 3..5: max(2, -5)
    assert got == {(0, 0, 0, 0): torch.finfo(torch.float64).min, (0, 4, 0, 0): 2.0}
    y.F.sum().backward()
    assert feats.grad.flatten().tolist() == [0.0, 1.0, 0.0]
