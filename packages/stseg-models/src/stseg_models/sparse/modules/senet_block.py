"""Squeeze-excitation blocks of MinkowskiEngine 0.5.4's ``modules.senet_block``.

``SELayer``: global average pooling - Linear(C, C // reduction) - ReLU - Linear(C // reduction,
C) - Sigmoid, multiplied back onto every row of its scene (`MinkowskiBroadcastMultiplication`).
``SEBasicBlock`` / ``SEBottleneck`` apply it to the residual branch before the addition.
MinkowskiEngine 0.5.4's SE blocks pass ``D=`` to blocks that only accept ``dimension=`` and
cannot be built; here both spellings are accepted.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from stseg_models.sparse.broadcast import MinkowskiBroadcastMultiplication
from stseg_models.sparse.modules.resnet_block import BasicBlock, Bottleneck
from stseg_models.sparse.nonlinearity import MinkowskiLinear, MinkowskiReLU, MinkowskiSigmoid
from stseg_models.sparse.pooling import MinkowskiGlobalPooling


class SELayer(nn.Module):
    """Channel gates from the scene's mean features; parameters ``fc.0.linear.*``, ``fc.2.linear.*``."""

    def __init__(self, channel: int, reduction: int = 16, D: int = -1) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            MinkowskiLinear(channel, channel // reduction),
            MinkowskiReLU(inplace=True),
            MinkowskiLinear(channel // reduction, channel),
            MinkowskiSigmoid(),
        )
        self.pooling = MinkowskiGlobalPooling()
        self.broadcast_mul = MinkowskiBroadcastMultiplication()

    def forward(self, x: Any) -> Any:
        return self.broadcast_mul(x, self.fc(self.pooling(x)))


def _dim(D: int, dimension: int | None) -> int:
    return D if dimension is None else dimension


class SEBasicBlock(BasicBlock):
    """`BasicBlock` whose residual branch is gated by an `SELayer` (``se``)."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        reduction: int = 16,
        D: int = -1,
        dimension: int | None = None,
    ) -> None:
        d = _dim(D, dimension)
        super().__init__(inplanes, planes, stride, dilation, downsample, dimension=d)
        self.se = SELayer(planes, reduction=reduction, D=d)

    def residual_branch(self, x: Any) -> Any:
        return self.se(super().residual_branch(x))


class SEBottleneck(Bottleneck):
    """`Bottleneck` whose residual branch is gated by an `SELayer` (``se``)."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        D: int = 3,
        reduction: int = 16,
        dimension: int | None = None,
    ) -> None:
        d = _dim(D, dimension)
        super().__init__(inplanes, planes, stride, dilation, downsample, dimension=d)
        self.se = SELayer(planes * self.expansion, reduction=reduction, D=d)

    def residual_branch(self, x: Any) -> Any:
        return self.se(super().residual_branch(x))
