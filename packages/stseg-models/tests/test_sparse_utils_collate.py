"""`ME.utils` batching, `kaiming_normal_` and `summary` against slow references."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.utils import (
    SparseCollation,
    batch_sparse_collate,
    batched_coordinates,
    kaiming_normal_,
    sparse_collate,
    summary,
)


def samples(seed: int, sizes: list[int], dim: int = 3, floats: bool = True) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for b, n in enumerate(sizes):
        xyz = rng.uniform(-4, 4, (n, dim)) if floats else rng.integers(-4, 4, (n, dim))
        feats = rng.normal(size=(n, 2)).astype(np.float32)
        labels = rng.integers(0, 9, n)
        # alternate numpy and torch containers inside one batch
        if b % 2:
            out.append((torch.from_numpy(xyz), torch.from_numpy(feats), torch.from_numpy(labels)))
        else:
            out.append((xyz, feats, labels))
    return out


def ref_batch(coords: list, floor: bool) -> list[list[float]]:
    rows = []
    for b, cs in enumerate(coords):
        for r in np.asarray(cs).tolist():
            rows.append([b] + [math.floor(v) if floor else v for v in r])
    return rows


@pytest.mark.parametrize("dtype", [torch.int32, torch.float32])
def test_batched_coordinates_matches_reference(dtype: torch.dtype) -> None:
    coords = [s[0] for s in samples(1, [5, 0, 7, 3])]
    got = batched_coordinates(coords, dtype=dtype)
    assert got.dtype == dtype and got.device.type == "cpu" and got.shape == (15, 4)
    want = torch.tensor(ref_batch(coords, floor=dtype == torch.int32), dtype=dtype)
    assert torch.equal(got, want)


def test_batched_coordinates_integer_input_and_errors() -> None:
    coords = [np.array([[1, 2]]), torch.tensor([[-3, 4]], dtype=torch.int64)]
    assert batched_coordinates(coords).tolist() == [[0, 1, 2], [1, -3, 4]]
    with pytest.raises(SparseInputError, match="sequence"):
        batched_coordinates(torch.zeros(3, 3))
    with pytest.raises(SparseInputError, match="dimensions differ"):
        batched_coordinates([np.zeros((1, 3)), np.zeros((1, 2))])
    with pytest.raises(SparseInputError, match="2D"):
        batched_coordinates([np.zeros(3)])
    with pytest.raises(SparseInputError, match=r"int32 or torch\.float32"):
        batched_coordinates([np.zeros((1, 3))], dtype=torch.int64)
    with pytest.raises(SparseInputError, match="empty"):
        batched_coordinates([])


def test_sparse_collate_with_and_without_labels() -> None:
    data = samples(2, [4, 6, 1])
    coords, feats, labels = (list(x) for x in zip(*data, strict=True))
    c, f = sparse_collate(coords, feats)
    assert c.dtype == torch.int32 and c.tolist() == ref_batch(coords, floor=True)
    assert f.dtype == torch.float32
    assert torch.equal(f, torch.cat([torch.as_tensor(x) for x in feats]))
    c2, f2, lb = sparse_collate(coords, feats, labels)
    assert torch.equal(c2, c) and torch.equal(f2, f)
    assert lb.tolist() == np.concatenate([np.asarray(x) for x in labels]).tolist()
    # one int label per sample (classification) comes back as the list
    _, _, cls = sparse_collate(coords, feats, [3, 1, 4])
    assert cls == [3, 1, 4]
    with pytest.raises(SparseInputError, match="feature rows"):
        sparse_collate(coords, [feats[1], feats[0], feats[2]])


def test_batch_sparse_collate_is_sparse_collate_over_samples() -> None:
    data = samples(3, [3, 2])
    c, f, lb = batch_sparse_collate(data, dtype=torch.float32)
    c_ref, f_ref, lb_ref = sparse_collate(
        *(list(x) for x in zip(*data, strict=True)), dtype=torch.float32
    )
    assert torch.equal(c, c_ref) and torch.equal(f, f_ref) and torch.equal(lb, lb_ref)
    c, f = batch_sparse_collate([(d[0], d[1]) for d in data])
    assert c.shape == (5, 4) and f.shape == (5, 2)


def test_sparse_collation_limits_points(caplog: pytest.LogCaptureFixture) -> None:
    data = samples(4, [4, 5, 3, 6])
    full = SparseCollation()(data)
    assert full[0].shape[0] == 18
    with caplog.at_level(logging.WARNING):
        cut = SparseCollation(limit_numpoints=12)(data)
    assert cut[0].shape[0] == 12 and cut[0][:, 0].max().item() == 2  # samples 0..2 fit exactly
    assert "Truncating batch size at 3 out of 4" in caplog.text
    assert SparseCollation(limit_numpoints=0)(data)[0].shape[0] == 18
    with pytest.raises(SparseInputError, match="first sample has 4 points"):
        SparseCollation(limit_numpoints=3)(data)


def test_collation_works_as_a_dataloader_collate_fn() -> None:
    data = samples(5, [3, 4, 5, 2], floats=False)
    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=SparseCollation())
    batches = list(loader)
    assert [b[0].shape[0] for b in batches] == [7, 7]
    assert batches[1][0][:, 0].tolist() == [0] * 5 + [1] * 2


@pytest.mark.parametrize(
    "shape,mode,fan",
    [
        ((4, 6), "fan_in", 6),
        ((4, 6), "fan_out", 4),
        ((27, 8, 16), "fan_in", 216),
        ((27, 8, 16), "FAN_OUT", 432),
    ],
)
def test_kaiming_normal_uses_minkowski_fans(shape: tuple, mode: str, fan: int) -> None:
    torch.manual_seed(0)
    w = torch.empty(shape)
    out = kaiming_normal_(w, mode=mode, nonlinearity="relu")
    assert out is w
    std = math.sqrt(2.0) / math.sqrt(fan)
    torch.manual_seed(0)
    assert torch.equal(w, torch.empty(shape).normal_(0, std))  # one normal_ draw, same generator


def test_kaiming_normal_rejects_bad_input() -> None:
    with pytest.raises(SparseInputError, match="Mode"):
        kaiming_normal_(torch.empty(3, 3), mode="fan_avg")
    with pytest.raises(SparseInputError, match="fewer than 2"):
        kaiming_normal_(torch.empty(3))


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = ME.MinkowskiConvolution(2, 4, kernel_size=3, dimension=3)
        self.bn = ME.MinkowskiBatchNorm(4)
        self.relu = ME.MinkowskiReLU()
        self.head = torch.nn.Sequential(ME.MinkowskiLinear(4, 3, bias=True))

    def forward(self, x: ME.SparseTensor) -> ME.SparseTensor:
        return self.head(self.relu(self.bn(self.conv(x))))


def test_summary_counts_parameters_and_prints_each_layer(capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(0)
    net = Tiny()
    net.bn.bn.weight.requires_grad_(False)
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [1, 2, 2, 2]], dtype=torch.int32)
    x = ME.SparseTensor(torch.randn(3, 2), coords)
    total, trainable = summary(net, x)
    counts = {"conv": 27 * 2 * 4, "bn": 8, "linear": 4 * 3 + 3}
    assert total == sum(counts.values()) == sum(p.numel() for p in net.parameters())
    assert trainable == total - 8  # the frozen batch-norm weight's module counts as frozen
    text = capsys.readouterr().out
    assert "MinkowskiConvolution-1" in text and "[3, 4]" in text
    assert f"Total params: {total:,}" in text and f"Trainable params: {trainable:,}" in text
    # input size: (N*C + N*(1+D)*2) * 4 bytes (MinkowskiEngine's 50 % hash occupancy)
    assert f"Input size (MB): {(3 * 2 + 3 * 4 * 2) * 4 / 1024**2:0.2f}" in text
