"""Pointwise layers: every torch activation MinkowskiEngine 0.5 wraps, dropout, linear, sinusoidal.

Each wraps its torch module under ``.module`` (``.linear`` for MinkowskiLinear), applies it to the
features and keeps the coordinates; they accept a SparseTensor or a TensorField.
`MinkowskiAdaptiveLogSoftmaxWithLoss` returns torch's ``(output, loss)`` pair instead (its
results are per row, not features); `MinkowskiSinusoidal` is ``sin(x @ kernel + bias) * coef``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from stseg_models.sparse.common import MinkowskiModuleBase
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.validation import check_channels
from stseg_models.sparse.wrap import require_sparse_like, rewrap


class MinkowskiNonlinearityBase(MinkowskiModuleBase):
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


class MinkowskiAdaptiveLogSoftmaxWithLoss(MinkowskiNonlinearityBase):
    """``nn.AdaptiveLogSoftmaxWithLoss`` on the features (parameters under ``.module``).

    ``forward(input, target [N])`` returns torch's ``(output [N], loss)`` pair, `log_prob` a
    tensor of the input's kind with [N, n_classes] log-probabilities, `predict` the classes [N].
    MinkowskiEngine 0.5.4 calls the module without a target, which always raises.
    """

    MODULE = nn.AdaptiveLogSoftmaxWithLoss
    module: nn.AdaptiveLogSoftmaxWithLoss  # its log_prob / predict, typed (nn.Module's are not)

    def forward(self, input: Any, target: torch.Tensor | None = None) -> Any:  # type: ignore[override]
        require_sparse_like(input, type(self).__name__)
        if target is None:
            raise SparseInputError(
                "MinkowskiAdaptiveLogSoftmaxWithLoss needs the target classes [N]; use log_prob() "
                "for the log-probabilities"
            )
        return self.module(input.F, target)

    def log_prob(self, input: Any) -> Any:
        require_sparse_like(input, type(self).__name__)
        return rewrap(input, self.module.log_prob(input.F))

    def predict(self, input: Any) -> torch.Tensor:
        require_sparse_like(input, type(self).__name__)
        return self.module.predict(input.F)


NONLINEARITIES = [
    MinkowskiReLU, MinkowskiPReLU, MinkowskiELU, MinkowskiSELU, MinkowskiCELU, MinkowskiGELU, MinkowskiSiLU,
    MinkowskiLeakyReLU, MinkowskiReLU6, MinkowskiRReLU, MinkowskiHardshrink, MinkowskiHardsigmoid,
    MinkowskiHardswish, MinkowskiHardtanh, MinkowskiLogSigmoid, MinkowskiSigmoid, MinkowskiSoftplus,
    MinkowskiSoftshrink, MinkowskiSoftsign, MinkowskiTanh, MinkowskiTanhshrink, MinkowskiThreshold,
    MinkowskiSoftmax, MinkowskiSoftmin, MinkowskiLogSoftmax, MinkowskiDropout, MinkowskiAlphaDropout,
]  # fmt: skip
# every pointwise layer of MinkowskiEngine 0.5.4's MinkowskiNonlinearity module
ALL_NONLINEARITIES = [*NONLINEARITIES, MinkowskiAdaptiveLogSoftmaxWithLoss]


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


class MinkowskiSinusoidal(MinkowskiModuleBase):
    """``sin(x @ kernel + bias) * coef`` on the features; ``kernel`` [in, out], ``bias`` and
    ``coef`` [1, out], all initialised uniform in [0, 1) as in MinkowskiEngine 0.5.4."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        self.in_channel, self.out_channel = in_channel, out_channel
        self.kernel = nn.Parameter(torch.rand(in_channel, out_channel))
        self.bias = nn.Parameter(torch.rand(1, out_channel))
        self.coef = nn.Parameter(torch.rand(1, out_channel))

    def forward(self, input: Any) -> Any:
        require_sparse_like(input, type(self).__name__)
        check_channels(input.F.shape[1], self.in_channel, type(self).__name__)
        return rewrap(input, torch.sin(input.F.mm(self.kernel) + self.bias) * self.coef)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channel}, {self.out_channel})"


__all__ = [cls.__name__ for cls in ALL_NONLINEARITIES] + [
    "ALL_NONLINEARITIES",
    "MinkowskiSinusoidal",
    "NONLINEARITIES",
    "MinkowskiLinear",
    "MinkowskiNonlinearityBase",
]
