"""Normalisation, pointwise layers, linear, cat, TensorField and the backend switch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import stseg_models.sparse as ME
from stseg_models.sparse.nonlinearity import NONLINEARITIES


def small_tensor(channels: int = 4, seed: int = 0) -> ME.SparseTensor:
    g = torch.Generator().manual_seed(seed)
    coords = torch.unique(
        torch.cat(
            [torch.randint(0, 2, (40, 1), generator=g), torch.randint(0, 6, (40, 3), generator=g)],
            1,
        ),
        dim=0,
    )
    return ME.SparseTensor(torch.randn(len(coords), channels, generator=g), coords.int())


def test_batchnorm_equals_batchnorm1d() -> None:
    x = small_tensor()
    layer = ME.MinkowskiBatchNorm(4, momentum=0.02)
    ref = nn.BatchNorm1d(4, momentum=0.02)
    torch.testing.assert_close(layer(x).F, ref(x.F))
    torch.testing.assert_close(layer.bn.running_mean, ref.running_mean)
    layer.eval()
    ref.eval()
    torch.testing.assert_close(layer(x).F, ref(x.F))


def test_sync_batchnorm_conversion_keeps_state() -> None:
    model = nn.Sequential(ME.MinkowskiBatchNorm(4))
    model[0].bn.running_mean.fill_(3.0)
    converted = ME.MinkowskiSyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(converted[0], ME.MinkowskiSyncBatchNorm)
    assert float(converted[0].bn.running_mean[0]) == 3.0


def test_instance_norm_per_scene() -> None:
    x = small_tensor()
    layer = ME.MinkowskiInstanceNorm(4)
    with torch.no_grad():
        layer.weight.fill_(2.0)
        layer.bias.fill_(0.5)
    y = layer(x)
    for b in (0, 1):
        rows = x.C[:, 0] == b
        f = x.F[rows]
        expected = (f - f.mean(0)) / torch.sqrt(f.var(0, unbiased=False) + layer.eps) * 2.0 + 0.5
        torch.testing.assert_close(y.F[rows], expected)


def test_instance_norm_gradcheck() -> None:
    x = small_tensor().double()
    layer = ME.MinkowskiInstanceNorm(4).double()
    feats = x.F.clone().requires_grad_(True)
    key, manager = x.coordinate_map_key, x.coordinate_manager

    def fn(f: torch.Tensor) -> torch.Tensor:
        return layer(ME.SparseTensor(f, coordinate_map_key=key, coordinate_manager=manager)).F

    assert torch.autograd.gradcheck(fn, (feats,))


@pytest.mark.parametrize("cls", NONLINEARITIES, ids=lambda c: c.__name__)
def test_nonlinearity_matches_torch(cls: type) -> None:
    x = small_tensor()
    args: tuple = (0.1, 20.0) if cls is ME.MinkowskiThreshold else ()
    kwargs = (
        {"dim": 1}
        if cls in (ME.MinkowskiSoftmax, ME.MinkowskiSoftmin, ME.MinkowskiLogSoftmax)
        else {}
    )
    layer = cls(*args, **kwargs)
    layer.eval()  # dropout / rrelu deterministic
    torch.manual_seed(0)
    y = layer(x)
    assert y.coordinate_map_key == x.coordinate_map_key
    torch.testing.assert_close(y.F, layer.module(x.F))


def test_dropout_training_zeroes_and_scales() -> None:
    x = ME.SparseTensor(
        torch.ones(1000, 1),
        torch.stack(
            [torch.zeros(1000, dtype=torch.int32), torch.arange(1000, dtype=torch.int32)], 1
        ),
    )
    y = ME.MinkowskiDropout(0.5)(x)
    values = set(y.F.flatten().tolist())
    assert values <= {0.0, 2.0} and len(values) == 2


def test_linear_and_names() -> None:
    x = small_tensor()
    layer = ME.MinkowskiLinear(4, 3)
    torch.testing.assert_close(layer(x).F, layer.linear(x.F))
    assert list(layer.state_dict()) == ["linear.weight", "linear.bias"]
    with pytest.raises(ME.SparseInputError, match="expects 4 input channels"):
        layer(small_tensor(channels=5))
    with pytest.raises(ME.SparseInputError, match="expects 4 input channels"):
        ME.MinkowskiBatchNorm(4)(small_tensor(channels=5))


def test_cat_channels_and_errors() -> None:
    x = small_tensor()
    y = ME.MinkowskiReLU()(x)
    out = ME.cat(x, y)
    torch.testing.assert_close(out.F, torch.cat([x.F, y.F], 1))
    assert ME.cat([x, y]).F.shape[1] == 8
    coarse = ME.MinkowskiMaxPooling(2, 2, dimension=3)(x)
    with pytest.raises(ME.SparseInputError, match="different coordinates"):
        ME.cat(x, coarse)


def test_tensor_field_sparse_and_slice() -> None:
    xyz = torch.tensor(
        [
            [0, 0.2, 0.3, 0.1],
            [0, 0.7, 0.1, 0.9],
            [0, 1.5, 0.0, 0.0],
            [1, 0.5, 0.5, 0.5],
            [1, -0.5, 0.0, 0.0],
        ]
    )
    feats = torch.tensor([[1.0], [3.0], [5.0], [7.0], [9.0]])
    field = ME.TensorField(feats, xyz)
    sparse = field.sparse()
    assert sparse.C.tolist() == [[0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [1, -1, 0, 0]]
    assert sparse.F.flatten().tolist() == [2.0, 5.0, 7.0, 9.0]  # duplicates averaged
    out = ME.MinkowskiConvolution(1, 2, kernel_size=3, dimension=3)(sparse)
    back = out.slice(field)
    assert isinstance(back, ME.TensorField) and back.F.shape == (5, 2)
    torch.testing.assert_close(back.F, out.F[[0, 0, 1, 2, 3]])
    torch.testing.assert_close(ME.MinkowskiReLU()(back).F, back.F.clamp(min=0))
    coarse = field.sparse(tensor_stride=2)
    assert coarse.tensor_stride == [2, 2, 2]
    sliced = coarse.slice(field)
    torch.testing.assert_close(sliced.F, coarse.F[field.inverse_mapping(coarse.coordinate_map_key)])


def test_tensor_field_unet_slice_after_round_trip() -> None:
    g = torch.Generator().manual_seed(0)
    xyz = torch.cat([torch.zeros(100, 1), torch.rand(100, 3, generator=g) * 8], 1)
    field = ME.TensorField(torch.randn(100, 2, generator=g), xyz)
    x = field.sparse()
    down = ME.MinkowskiConvolution(2, 4, kernel_size=2, stride=2, dimension=3)(x)
    up = ME.MinkowskiConvolutionTranspose(4, 3, kernel_size=2, stride=2, dimension=3)(down)
    torch.testing.assert_close(up.slice(field).F, up.F[x.inverse_mapping])


@pytest.mark.parametrize(
    ("coords", "match"),
    [
        (torch.tensor([[0, float("nan"), 0, 0]]), "NaN"),
        (torch.tensor([[-1, 0.0, 0, 0]]), "non-negative"),
        (torch.tensor([[0.5, 0.0, 0, 0]]), "integers"),
    ],
)
def test_tensor_field_bad_input(coords: torch.Tensor, match: str) -> None:
    with pytest.raises(ME.SparseInputError, match=match):
        ME.TensorField(torch.ones(1, 1), coords)


def test_backends_report_and_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    info = ME.backends()
    assert info["native"].available
    if not info["minkowski"].available:
        assert "MinkowskiEngine" in info["minkowski"].reason
    assert ME.get_backend("native") is ME
    monkeypatch.setenv("STSEG_SPARSE_BACKEND", "native")
    assert ME.backend_name() == "native"
    monkeypatch.setenv("STSEG_SPARSE_BACKEND", "bogus")
    with pytest.raises(ME.SparseInputError, match="unknown sparse backend"):
        ME.backend_name()
    if not info["minkowski"].available:
        with pytest.raises(ME.SparseBackendError, match="install-minkowski"):
            ME.get_backend("minkowski")


def test_collections_shim() -> None:
    import collections

    ME.install_collections_shim()
    assert collections.Sequence is collections.abc.Sequence  # type: ignore[attr-defined]
