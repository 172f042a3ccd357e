"""Generated output coordinates (expand_coordinates, generative transposed convolution, transposed
layers on a tensor with no finer set) against slow obvious references, 3D and 4D.

The reference enumerates every (input row, kernel offset) pair with Python loops and sums weights
into a dict keyed by output coordinate, so it shares no code with the engine's kernel maps.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import stseg_models.sparse as ME


def random_tensor(
    dim: int, n: int, channels: int, stride: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pts = torch.cat(
        [
            torch.randint(0, 2, (n, 1), generator=g),
            torch.randint(-3, 4, (n, dim), generator=g) * stride,
        ],
        dim=1,
    )
    coords = torch.unique(pts, dim=0).int()
    return coords, torch.randn(len(coords), channels, generator=g, dtype=torch.float64)


def cube(kernel: int, dim: int) -> list[tuple[int, ...]]:
    """Cube offsets, first axis fastest; odd sizes centred, even sizes 0..k-1."""
    r = range(-(kernel // 2), kernel // 2 + 1) if kernel % 2 else range(kernel)
    return [tuple(reversed(p)) for p in itertools.product(*[r] * dim)]


def reference_generative(
    coords: torch.Tensor,
    feats: torch.Tensor,
    weight: torch.Tensor,
    kernel: int,
    step: int,
    keep_multiple: int = 1,
) -> dict[tuple[int, ...], torch.Tensor]:
    """out[c + step * off_k] += feats[c] @ weight[k] over every row c and offset k (transposed)."""
    dim = coords.shape[1] - 1
    out: dict[tuple[int, ...], torch.Tensor] = {}
    for row, c in enumerate(coords.tolist()):
        for k, off in enumerate(cube(kernel, dim)):
            o = (c[0], *[c[i + 1] + step * off[i] for i in range(dim)])
            if any(v % keep_multiple for v in o[1:]):
                continue
            out[o] = out.get(o, 0) + feats[row] @ weight[k]
    return out


def reference_forward(
    in_coords: torch.Tensor,
    feats: torch.Tensor,
    out_coords: list[tuple[int, ...]],
    weight: torch.Tensor,
    kernel: int,
    step: int,
) -> dict[tuple[int, ...], torch.Tensor]:
    """out[o] = sum_k feats[o + step * off_k] @ weight[k] (zero where no neighbour)."""
    dim = in_coords.shape[1] - 1
    rows = {tuple(c): i for i, c in enumerate(in_coords.tolist())}
    out = {}
    for o in out_coords:
        acc = torch.zeros(weight.shape[2], dtype=feats.dtype)
        for k, off in enumerate(cube(kernel, dim)):
            n = (o[0], *[o[i + 1] + step * off[i] for i in range(dim)])
            if n in rows:
                acc = acc + feats[rows[n]] @ weight[k]
        out[o] = acc
    return out


def as_dict(y: ME.SparseTensor) -> dict[tuple[int, ...], torch.Tensor]:
    return {tuple(c): f for c, f in zip(y.C.tolist(), y.F, strict=True)}


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.allclose(got[key], value, atol=1e-12), key


@pytest.mark.parametrize("dim", [3, 4])
@pytest.mark.parametrize("kernel", [2, 3])
def test_generative_transpose_values_coordinates_gradients(dim: int, kernel: int) -> None:
    coords, feats = random_tensor(dim, 16 if dim == 3 else 6, 3, stride=2, seed=dim * 10 + kernel)
    layer = ME.MinkowskiGenerativeConvolutionTranspose(
        3, 2, kernel_size=kernel, stride=2, dimension=dim
    ).double()
    f = feats.clone().requires_grad_(True)
    y = layer(ME.SparseTensor(f, coords, tensor_stride=2))
    assert y.tensor_stride == [1] * dim
    f_ref = feats.clone().requires_grad_(True)
    w_ref = layer.kernel.detach().clone().requires_grad_(True)
    want = reference_generative(coords, f_ref, w_ref, kernel, step=1)
    assert_same(as_dict(y), want)
    # gradients: the same random linear functional of both outputs
    g = torch.Generator().manual_seed(3)
    probe = {c: torch.randn(2, generator=g, dtype=torch.float64) for c in sorted(want)}
    (sum((as_dict(y)[c] * p).sum() for c, p in probe.items())).backward()
    (sum((want[c] * p).sum() for c, p in probe.items())).backward()
    assert torch.allclose(f.grad, f_ref.grad) and torch.allclose(layer.kernel.grad, w_ref.grad)


@pytest.mark.parametrize("dim", [3, 4])
def test_generative_dilated_and_stride_one(dim: int) -> None:
    coords, feats = random_tensor(dim, 25, 2, stride=4, seed=7)
    layer = ME.MinkowskiGenerativeConvolutionTranspose(
        2, 2, kernel_size=3, stride=2, dilation=2, dimension=dim
    ).double()
    y = layer(ME.SparseTensor(feats, coords, tensor_stride=4))
    assert y.tensor_stride == [2] * dim  # offsets: output stride 2 x dilation 2
    assert_same(as_dict(y), reference_generative(coords, feats, layer.kernel.detach(), 3, step=4))
    flat = ME.MinkowskiGenerativeConvolutionTranspose(2, 2, kernel_size=3, dimension=dim).double()
    x1 = ME.SparseTensor(feats, coords // 4)
    y1 = flat(x1)
    assert y1.coordinate_map_key != x1.coordinate_map_key  # always a new set
    assert_same(as_dict(y1), reference_generative(coords // 4, feats, flat.kernel.detach(), 3, 1))


@pytest.mark.parametrize("dim", [3, 4])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [2, 3])
def test_expand_coordinates_convolution(dim: int, stride: int, kernel: int) -> None:
    """Footprint at the input stride, only multiples of the output stride kept (as measured)."""
    coords, feats = random_tensor(dim, 30, 2, stride=1, seed=stride + kernel)
    conv = ME.MinkowskiConvolution(
        2, 3, kernel_size=kernel, stride=stride, expand_coordinates=True, dimension=dim
    ).double()
    y = conv(ME.SparseTensor(feats, coords))
    assert y.tensor_stride == [stride] * dim
    w = conv.kernel.detach()
    footprint = reference_generative(coords, feats, w, kernel, 1, keep_multiple=stride)
    # values are those of an ordinary convolution evaluated on the generated coordinates
    assert_same(as_dict(y), reference_forward(coords, feats, sorted(footprint), w, kernel, 1))


@pytest.mark.parametrize("dim", [3, 4])
@pytest.mark.parametrize("kernel", [2, 3])
def test_transpose_without_finer_set_generates_footprint(dim: int, kernel: int) -> None:
    coords, feats = random_tensor(dim, 30, 2, stride=2, seed=kernel)
    x = ME.SparseTensor(feats, coords, tensor_stride=2)
    conv = ME.MinkowskiConvolutionTranspose(
        2, 2, kernel_size=kernel, stride=2, dimension=dim
    ).double()
    y = conv(x)
    assert y.tensor_stride == [1] * dim
    assert_same(as_dict(y), reference_generative(coords, feats, conv.kernel.detach(), kernel, 1))
    # a second transposed layer reuses that set instead of generating another one
    again = ME.MinkowskiConvolutionTranspose(2, 2, kernel_size=kernel, stride=2, dimension=dim)
    assert again.double()(x).coordinate_map_key == y.coordinate_map_key
    # with expand_coordinates every call makes a new set
    gen = ME.MinkowskiConvolutionTranspose(
        2, 2, kernel_size=kernel, stride=2, expand_coordinates=True, dimension=dim
    ).double()
    assert gen(x).coordinate_map_key not in (y.coordinate_map_key, x.coordinate_map_key)


@pytest.mark.parametrize("dim", [3, 4])
@pytest.mark.parametrize("expand", [False, True])
def test_pooling_transpose_without_finer_set(dim: int, expand: bool) -> None:
    coords, feats = random_tensor(dim, 30, 2, stride=2, seed=11)
    pool = ME.MinkowskiPoolingTranspose(
        kernel_size=3, stride=2, expand_coordinates=expand, dimension=dim
    )
    y = pool(ME.SparseTensor(feats, coords, tensor_stride=2))
    # unpooling sums the contributing inputs (MinkowskiEngine 0.5.4's kernel, measured)
    sums: dict[tuple[int, ...], torch.Tensor] = {}
    counts: dict[tuple[int, ...], int] = {}
    for row, c in enumerate(coords.tolist()):
        for off in cube(3, dim):
            o = (c[0], *[c[i + 1] + off[i] for i in range(dim)])
            sums[o] = sums.get(o, 0) + feats[row]
            counts[o] = counts.get(o, 0) + 1
    want = sums
    assert max(counts.values()) > 1  # the case where summing and averaging differ
    assert_same(as_dict(y), want)


def test_generated_rows_follow_input_then_kernel_order() -> None:
    """Native row order: input rows in order, kernel offsets in order, first occurrence kept."""
    coords = torch.IntTensor([[0, 2, 0], [0, 0, 0]])
    y = ME.MinkowskiGenerativeConvolutionTranspose(1, 1, kernel_size=2, stride=2, dimension=2)(
        ME.SparseTensor(torch.ones(2, 1), coords, tensor_stride=2)
    )
    assert y.C.tolist() == [
        [0, 2, 0], [0, 3, 0], [0, 2, 1], [0, 3, 1], [0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1],
    ]  # fmt: skip


def test_transpose_lands_on_the_default_key_of_the_finer_stride() -> None:
    """MinkowskiEngine's rule: the set keyed (finer stride, "") whatever the input's own id."""
    a = ME.SparseTensor(torch.ones(3, 1), torch.IntTensor([[0, 0, 0], [0, 1, 1], [0, 3, 2]]))
    b = ME.SparseTensor(
        torch.ones(2, 1),
        torch.IntTensor([[0, 9, 9], [0, 11, 11]]),
        coordinate_manager=a.coordinate_manager,
    )
    assert b.coordinate_map_key.string_id != ""
    pooled = ME.MinkowskiAvgPooling(kernel_size=2, stride=2, dimension=2)(b)
    assert pooled.coordinate_map_key.string_id == b.coordinate_map_key.string_id
    up = ME.MinkowskiConvolutionTranspose(1, 1, kernel_size=2, stride=2, dimension=2)(pooled)
    assert up.coordinate_map_key == a.coordinate_map_key
    # a TensorField's key does not take the sparse default key: its U-Net skips still align
    field = ME.TensorField(torch.ones(2, 1), torch.tensor([[0, 0.5, 0.5], [0, 2.5, 2.5]]))
    x = field.sparse()
    assert x.coordinate_map_key == ME.CoordinateMapKey([1, 1], "")
