"""Conversions, reductions, MinkowskiFunctional, MinkowskiNetwork, modules and the names of
MinkowskiEngine 0.5.4's ops API, against slow references or torch on the features."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import stseg_models.sparse as ME
from stseg_models.sparse.errors import SparseInputError


def random_tensor(dim: int, channels: int, seed: int, n: int = 40) -> ME.SparseTensor:
    g = torch.Generator().manual_seed(seed)
    coords = torch.cat(
        [torch.randint(0, 2, (n, 1), generator=g), torch.randint(0, 4, (n, dim), generator=g)], 1
    )
    coords = torch.unique(coords, dim=0).int()
    return ME.SparseTensor(torch.randn(len(coords), channels, generator=g), coords)


# -- conversions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("spatial", [(3, 4, 2), (2, 3, 2, 2)])
def test_dense_coordinates_and_to_sparse_all(spatial: tuple[int, ...]) -> None:
    shape = (2, 3, *spatial)
    coords = ME.dense_coordinates(shape)
    expected = [(b, *p) for b in range(2) for p in itertools.product(*(range(s) for s in spatial))]
    assert coords.dtype == torch.int32 and [tuple(r) for r in coords.tolist()] == expected
    dense = torch.randn(shape, requires_grad=True)
    x = ME.to_sparse_all(dense)
    rows = [dense[(r[0], slice(None), *r[1:])] for r in expected]
    torch.testing.assert_close(x.F, torch.stack(rows))
    x.F.sum().backward()
    assert dense.grad is not None and torch.equal(dense.grad, torch.ones_like(dense))
    back = ME.MinkowskiToDenseTensor(dense.shape)(x)
    torch.testing.assert_close(back, dense.detach())


def test_to_sparse_formats_and_module() -> None:
    g = torch.Generator().manual_seed(0)
    dense = torch.randn(2, 3, 4, 5, generator=g) * (torch.rand(2, 1, 4, 5, generator=g) < 0.4)
    x = ME.to_sparse(dense)
    sites = [
        (b, i, j) for b in range(2) for i in range(4) for j in range(5) if dense[b, :, i, j].any()
    ]
    assert [tuple(r) for r in x.C.tolist()] == sites  # row-major order of (batch, x, y)
    torch.testing.assert_close(x.F, torch.stack([dense[b, :, i, j] for b, i, j in sites]))
    channels_last = ME.to_sparse(dense.permute(0, 2, 3, 1), format="BXXC")
    assert torch.equal(channels_last.C, x.C) and torch.equal(channels_last.F, x.F)
    assert torch.equal(ME.MinkowskiToSparseTensor()(dense).C, x.C)
    every = ME.MinkowskiToSparseTensor(remove_zeros=False)(dense)
    assert len(every) == 2 * 4 * 5
    with pytest.raises(SparseInputError, match="format"):
        ME.to_sparse(dense, format="CBXX")
    with pytest.raises(SparseInputError, match="remove_zeros"):
        ME.MinkowskiToSparseTensor(coordinates=ME.dense_coordinates(dense.shape))
    field = ME.TensorField(
        torch.randn(5, 2), torch.cat([torch.zeros(5, 1), torch.rand(5, 3) * 3], 1)
    )
    assert isinstance(ME.MinkowskiToSparseTensor()(field), ME.SparseTensor)
    assert torch.equal(ME.MinkowskiToFeature()(x), x.F)


# -- reductions and stacks -----------------------------------------------------------------------
def test_sum_mean_var_cat_and_stacks() -> None:
    x = random_tensor(3, 4, seed=1)
    a, b, c = (x._with(x.F * s + s) for s in (1.0, 2.0, -0.5))
    fs = torch.stack([a.F, b.F, c.F])
    torch.testing.assert_close(ME.sum(a, b, c).F, fs.sum(0))
    torch.testing.assert_close(ME.mean([a, b, c]).F, fs.mean(0))
    torch.testing.assert_close(ME.var(a, b, c).F, fs.var(0, unbiased=False))
    torch.testing.assert_close(ME.cat(a, b).F, torch.cat([a.F, b.F], 1))
    assert ME.MinkowskiOps.sum is ME.sum and ME.MinkowskiOps._sum is ME.sum
    branches = [ME.MinkowskiLinear(4, 2), ME.MinkowskiLinear(4, 2)]
    outs = [m(x).F for m in branches]
    stacks = {
        "MinkowskiStackCat": torch.cat(outs, 1),
        "MinkowskiStackSum": outs[0] + outs[1],
        "MinkowskiStackMean": (outs[0] + outs[1]) / 2,
        "MinkowskiStackVar": torch.stack(outs).var(0, unbiased=False),
    }
    for name, expected in stacks.items():
        stack = getattr(ME, name)(*branches)
        torch.testing.assert_close(stack(x).F, expected)
        assert sorted(stack.state_dict()) == [
            "0.linear.bias",
            "0.linear.weight",
            "1.linear.bias",
            "1.linear.weight",
        ]
    y = random_tensor(3, 4, seed=2)
    with pytest.raises(SparseInputError, match="coordinate managers"):
        ME.sum(x, y)
    with pytest.raises(SparseInputError, match="at least 2"):
        ME.mean(x)


# -- MinkowskiFunctional -------------------------------------------------------------------------
# every function of MinkowskiEngine 0.5.4's MinkowskiFunctional module
POINTWISE = [
    "threshold", "relu", "hardtanh", "hardswish", "relu6", "elu", "selu", "celu", "leaky_relu",
    "prelu", "rrelu", "glu", "gelu", "logsigmoid", "hardshrink", "tanhshrink", "softsign",
    "softplus", "softmin", "softmax", "softshrink", "gumbel_softmax", "log_softmax", "tanh",
    "sigmoid", "hardsigmoid", "silu", "batch_norm", "normalize", "linear", "dropout",
    "alpha_dropout",
]  # fmt: skip
LOSSES = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "poisson_nll_loss",
    "cross_entropy", "hinge_embedding_loss", "kl_div", "l1_loss", "mse_loss",
    "multilabel_margin_loss", "multilabel_soft_margin_loss", "multi_margin_loss", "nll_loss",
    "smooth_l1_loss", "soft_margin_loss",
]  # fmt: skip
EXTRA_ARGS: dict[str, tuple] = {
    "threshold": (0.1, 0.0),
    "prelu": (torch.tensor([0.25]),),
    "softmin": (1,),
    "softmax": (1,),
    "log_softmax": (1,),
    "batch_norm": (torch.zeros(4), torch.ones(4)),
    "linear": (torch.ones(3, 4),),
}
RANDOM = {"rrelu", "gumbel_softmax", "dropout", "alpha_dropout"}


@pytest.mark.parametrize("name", POINTWISE)
def test_functional_pointwise(name: str) -> None:
    x = random_tensor(3, 4, seed=3)
    field = ME.TensorField(x.F, x.C.float())
    for inp in (x, field):
        torch.manual_seed(0)
        out = getattr(ME.MinkowskiFunctional, name)(inp, *EXTRA_ARGS.get(name, ()))
        torch.manual_seed(0)
        expected = getattr(F, name)(inp.F, *EXTRA_ARGS.get(name, ()))
        assert type(out) is type(inp)
        if name not in RANDOM or name in {"rrelu"}:
            torch.testing.assert_close(out.F, expected)
        else:
            assert out.F.shape == expected.shape
        assert torch.equal(out.C, inp.C)


def test_functional_losses() -> None:
    x = random_tensor(3, 4, seed=4)
    p = x._with(torch.sigmoid(x.F))
    labels = torch.randint(0, 4, (len(x),))
    torch.testing.assert_close(
        ME.MinkowskiFunctional.cross_entropy(x, labels), F.cross_entropy(x.F, labels)
    )
    torch.testing.assert_close(
        ME.MinkowskiFunctional.binary_cross_entropy(p, (p.F > 0.5).float()),
        F.binary_cross_entropy(p.F, (p.F > 0.5).float()),
    )
    torch.testing.assert_close(ME.MinkowskiFunctional.mse_loss(x, x.F * 0), (x.F**2).mean())
    assert all(callable(getattr(ME.MinkowskiFunctional, n)) for n in LOSSES)


# -- layers without coordinates of their own -----------------------------------------------------
def test_sinusoidal_and_adaptive_log_softmax() -> None:
    x = random_tensor(3, 4, seed=5)
    sin = ME.MinkowskiSinusoidal(4, 3)
    assert {k: tuple(v.shape) for k, v in sin.state_dict().items()} == {
        "kernel": (4, 3), "bias": (1, 3), "coef": (1, 3),
    }  # fmt: skip
    expected = torch.sin(x.F @ sin.kernel + sin.bias) * sin.coef
    torch.testing.assert_close(sin(x).F, expected)
    asm = ME.MinkowskiAdaptiveLogSoftmaxWithLoss(4, 6, cutoffs=[2])
    target = torch.randint(0, 6, (len(x),))
    out = asm(x, target)
    reference = asm.module(x.F, target)
    torch.testing.assert_close(out.loss, reference.loss)
    torch.testing.assert_close(asm.log_prob(x).F, asm.module.log_prob(x.F))
    assert torch.equal(asm.predict(x), asm.module.predict(x.F))


def test_minkowski_network_base() -> None:
    class Net(ME.MinkowskiNetwork):
        def __init__(self) -> None:
            super().__init__(3)
            self.conv = ME.MinkowskiConvolution(4, 2, kernel_size=3, dimension=self.D)

        def forward(self, x: ME.SparseTensor) -> ME.SparseTensor:
            return self.conv(x)

    with pytest.raises(TypeError):
        ME.MinkowskiNetwork(3)  # type: ignore[abstract]
    net = Net()
    x = random_tensor(3, 4, seed=6)
    net.init(x)
    assert net.D == 3 and net(x).F.shape == (len(x), 2)
    with pytest.raises(SparseInputError, match="3-dimensional"):
        net.init(random_tensor(4, 4, seed=6))


# -- modules -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [3, 4])
def test_resnet_blocks(dim: int) -> None:
    x = random_tensor(dim, 8, seed=dim)
    basic = ME.modules.BasicBlock(8, 8, dimension=dim)
    out = basic(x)
    # slow reference: the same layers applied one by one
    ref = basic.norm2(basic.conv2(basic.relu(basic.norm1(basic.conv1(x))))).F + x.F
    torch.testing.assert_close(out.F, torch.relu(ref))
    down = nn.Sequential(
        ME.MinkowskiConvolution(8, 8, kernel_size=1, stride=2, dimension=dim),
        ME.MinkowskiBatchNorm(8),
    )
    bottleneck = ME.modules.resnet_block.Bottleneck(8, 2, stride=2, downsample=down, dimension=dim)
    y = bottleneck(x)
    assert y.F.shape[1] == 8 and y.tensor_stride == [2] * dim
    y.F.sum().backward()
    assert bottleneck.conv1.kernel.grad is not None
    assert "norm3.bn.running_mean" in bottleneck.state_dict()


def test_senet_blocks() -> None:
    x = random_tensor(3, 16, seed=7)
    se = ME.modules.SELayer(16, reduction=4)
    gate = se.fc(se.pooling(x))
    rows = torch.unique(x.C[:, 0].long(), return_inverse=True)[1]
    torch.testing.assert_close(se(x).F, x.F * gate.F[rows])
    block = ME.modules.senet_block.SEBasicBlock(16, 16, reduction=4, D=3)
    out = block(x)
    branch = block.se(block.norm2(block.conv2(block.relu(block.norm1(block.conv1(x))))))
    torch.testing.assert_close(out.F, torch.relu(branch.F + x.F))
    assert "se.fc.0.linear.weight" in block.state_dict()
    bottleneck = ME.modules.SEBottleneck(16, 4, D=3, reduction=4)
    assert bottleneck(x).F.shape == (len(x), 16)


# -- names ---------------------------------------------------------------------------------------
# MinkowskiEngine 0.5.4 top-level names this part of the API provides
OPS_NAMES = [
    "MinkowskiUnion", "MinkowskiUnionFunction", "MinkowskiPruning", "MinkowskiPruningFunction",
    "MinkowskiBroadcast", "MinkowskiBroadcastAddition", "MinkowskiBroadcastMultiplication",
    "MinkowskiBroadcastConcatenation", "MinkowskiBroadcastFunction", "MinkowskiChannelwiseConvolution",
    "MinkowskiStableInstanceNorm", "MinkowskiInstanceNormFunction", "MinkowskiSinusoidal",
    "MinkowskiNetwork", "MinkowskiToSparseTensor", "MinkowskiToDenseTensor", "MinkowskiToFeature",
    "MinkowskiStackCat", "MinkowskiStackSum", "MinkowskiStackMean", "MinkowskiStackVar", "mean", "var",
    "sum", "to_sparse", "to_sparse_all", "dense_coordinates", "cat", "MinkowskiOps",
    "MinkowskiFunctional", "spmm", "MinkowskiSPMMFunction", "MinkowskiSPMMAverageFunction", "modules",
    "MinkowskiConvolutionFunction", "MinkowskiConvolutionTransposeFunction",
    "MinkowskiLocalPoolingFunction", "MinkowskiLocalPoolingTransposeFunction",
    "MinkowskiGlobalPoolingFunction", "MinkowskiDirectMaxPoolingFunction", "MinkowskiLinear",
    "MinkowskiELU", "MinkowskiHardshrink", "MinkowskiHardsigmoid", "MinkowskiHardtanh",
    "MinkowskiHardswish", "MinkowskiLeakyReLU", "MinkowskiLogSigmoid", "MinkowskiPReLU",
    "MinkowskiReLU", "MinkowskiReLU6", "MinkowskiRReLU", "MinkowskiSELU", "MinkowskiCELU",
    "MinkowskiGELU", "MinkowskiSigmoid", "MinkowskiSiLU", "MinkowskiSoftplus", "MinkowskiSoftshrink",
    "MinkowskiSoftsign", "MinkowskiTanh", "MinkowskiTanhshrink", "MinkowskiThreshold",
    "MinkowskiSoftmin", "MinkowskiSoftmax", "MinkowskiLogSoftmax", "MinkowskiAdaptiveLogSoftmaxWithLoss",
    "MinkowskiDropout", "MinkowskiAlphaDropout",
]  # fmt: skip
OPS_MODULE_NAMES = [
    "MinkowskiLinear", "MinkowskiToSparseTensor", "MinkowskiToDenseTensor", "MinkowskiToFeature",
    "MinkowskiStackCat", "MinkowskiStackSum", "MinkowskiStackMean", "MinkowskiStackVar", "cat",
    "mean", "var", "_sum", "to_sparse", "to_sparse_all", "dense_coordinates",
]  # fmt: skip


def test_every_ops_name_is_exported() -> None:
    missing = [n for n in OPS_NAMES if n not in ME.__all__ or not hasattr(ME, n)]
    assert missing == []
    assert [n for n in OPS_MODULE_NAMES if not hasattr(ME.MinkowskiOps, n)] == []
    assert [n for n in POINTWISE + LOSSES if not hasattr(ME.MinkowskiFunctional, n)] == []
    assert ME.modules.resnet_block.BasicBlock is ME.modules.BasicBlock
