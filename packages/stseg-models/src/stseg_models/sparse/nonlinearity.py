"""Pointwise layers: every torch activation MinkowskiEngine 0.5 wraps, dropout, and linear.

Each wraps its torch module under ``.module`` (``.linear`` for MinkowskiLinear), applies it to the
features and keeps the coordinates; they accept a SparseTensor or a TensorField.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from stseg_models.sparse.validation import check_channels
from stseg_models.sparse.wrap import require_sparse_like, rewrap


class MinkowskiNonlinearityBase(nn.Module):
    """Apply ``MODULE(*args, **kwargs)`` to the features."""

    MODULE: ClassVar[type[nn.Module]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.module = self.MODULE(*args, **kwargs)

    def forward(self, input: Any) -> Any:
        require_sparse_like(input, type(self).__name__)
        return rewrap(input, self.module(input.F))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.module.extra_repr()})"


def _make(name: str, module: type[nn.Module]) -> type[MinkowskiNonlinearityBase]:
    return type(
        name,
        (MinkowskiNonlinearityBase,),
        {"MODULE": module, "__doc__": f"Pointwise ``torch.nn.{module.__name__}``."},
    )


MinkowskiReLU = _make("MinkowskiReLU", nn.ReLU)
MinkowskiPReLU = _make("MinkowskiPReLU", nn.PReLU)
MinkowskiELU = _make("MinkowskiELU", nn.ELU)
MinkowskiSELU = _make("MinkowskiSELU", nn.SELU)
MinkowskiCELU = _make("MinkowskiCELU", nn.CELU)
MinkowskiGELU = _make("MinkowskiGELU", nn.GELU)
MinkowskiSiLU = _make("MinkowskiSiLU", nn.SiLU)
MinkowskiLeakyReLU = _make("MinkowskiLeakyReLU", nn.LeakyReLU)
MinkowskiReLU6 = _make("MinkowskiReLU6", nn.ReLU6)
MinkowskiRReLU = _make("MinkowskiRReLU", nn.RReLU)
MinkowskiHardshrink = _make("MinkowskiHardshrink", nn.Hardshrink)
MinkowskiHardsigmoid = _make("MinkowskiHardsigmoid", nn.Hardsigmoid)
MinkowskiHardswish = _make("MinkowskiHardswish", nn.Hardswish)
MinkowskiHardtanh = _make("MinkowskiHardtanh", nn.Hardtanh)
MinkowskiLogSigmoid = _make("MinkowskiLogSigmoid", nn.LogSigmoid)
MinkowskiSigmoid = _make("MinkowskiSigmoid", nn.Sigmoid)
MinkowskiSoftplus = _make("MinkowskiSoftplus", nn.Softplus)
MinkowskiSoftshrink = _make("MinkowskiSoftshrink", nn.Softshrink)
MinkowskiSoftsign = _make("MinkowskiSoftsign", nn.Softsign)
MinkowskiTanh = _make("MinkowskiTanh", nn.Tanh)
MinkowskiTanhshrink = _make("MinkowskiTanhshrink", nn.Tanhshrink)
MinkowskiThreshold = _make("MinkowskiThreshold", nn.Threshold)
MinkowskiSoftmax = _make("MinkowskiSoftmax", nn.Softmax)
MinkowskiSoftmin = _make("MinkowskiSoftmin", nn.Softmin)
MinkowskiLogSoftmax = _make("MinkowskiLogSoftmax", nn.LogSoftmax)
MinkowskiDropout = _make("MinkowskiDropout", nn.Dropout)
MinkowskiAlphaDropout = _make("MinkowskiAlphaDropout", nn.AlphaDropout)

NONLINEARITIES = [
    MinkowskiReLU, MinkowskiPReLU, MinkowskiELU, MinkowskiSELU, MinkowskiCELU, MinkowskiGELU, MinkowskiSiLU,
    MinkowskiLeakyReLU, MinkowskiReLU6, MinkowskiRReLU, MinkowskiHardshrink, MinkowskiHardsigmoid,
    MinkowskiHardswish, MinkowskiHardtanh, MinkowskiLogSigmoid, MinkowskiSigmoid, MinkowskiSoftplus,
    MinkowskiSoftshrink, MinkowskiSoftsign, MinkowskiTanh, MinkowskiTanhshrink, MinkowskiThreshold,
    MinkowskiSoftmax, MinkowskiSoftmin, MinkowskiLogSoftmax, MinkowskiDropout, MinkowskiAlphaDropout,
]  # fmt: skip


class MinkowskiLinear(nn.Module):
    """``nn.Linear`` on the features (parameters ``linear.weight``, ``linear.bias``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)

    def forward(self, input: Any) -> Any:
        require_sparse_like(input, type(self).__name__)
        check_channels(input.F.shape[1], self.linear.in_features, type(self).__name__)
        return rewrap(input, self.linear(input.F))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.linear.in_features}, {self.linear.out_features}, bias={self.linear.bias is not None})"


__all__ = [cls.__name__ for cls in NONLINEARITIES] + [
    "NONLINEARITIES",
    "MinkowskiLinear",
    "MinkowskiNonlinearityBase",
]
