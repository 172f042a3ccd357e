"""Residual blocks of MinkowskiEngine 0.5.4's ``modules.resnet_block`` (same parameter names).

``BasicBlock``: conv3x3 (stride) - BN - ReLU - conv3x3 - BN, plus the input (or
``downsample(input)``), then ReLU. ``Bottleneck``: conv1x1 - BN - ReLU - conv3x3 (stride) - BN -
ReLU - conv1x1 to ``planes * 4`` - BN, plus the shortcut, then ReLU. No convolution has a bias.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from stseg_models.sparse.conv import MinkowskiConvolution
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.nonlinearity import MinkowskiReLU
from stseg_models.sparse.norm import MinkowskiBatchNorm


def _dimension(dimension: int) -> int:
    if not isinstance(dimension, int) or dimension < 1:
        raise SparseInputError(f"dimension must be a positive integer, got {dimension!r}")
    return dimension


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection; ``expansion = 1``."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        bn_momentum: float = 0.1,
        dimension: int = -1,
    ) -> None:
        super().__init__()
        d = _dimension(dimension)
        self.conv1 = MinkowskiConvolution(
            inplanes, planes, kernel_size=3, stride=stride, dilation=dilation, dimension=d
        )
        self.norm1 = MinkowskiBatchNorm(planes, momentum=bn_momentum)
        self.conv2 = MinkowskiConvolution(
            planes, planes, kernel_size=3, stride=1, dilation=dilation, dimension=d
        )
        self.norm2 = MinkowskiBatchNorm(planes, momentum=bn_momentum)
        self.relu = MinkowskiReLU(inplace=True)
        self.downsample = downsample

    def residual_branch(self, x: Any) -> Any:
        out = self.relu(self.norm1(self.conv1(x)))
        return self.norm2(self.conv2(out))

    def forward(self, x: Any) -> Any:
        out = self.residual_branch(x)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 convolutions with a residual connection; ``expansion = 4``."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        bn_momentum: float = 0.1,
        dimension: int = -1,
    ) -> None:
        super().__init__()
        d = _dimension(dimension)
        self.conv1 = MinkowskiConvolution(inplanes, planes, kernel_size=1, dimension=d)
        self.norm1 = MinkowskiBatchNorm(planes, momentum=bn_momentum)
        self.conv2 = MinkowskiConvolution(
            planes, planes, kernel_size=3, stride=stride, dilation=dilation, dimension=d
        )
        self.norm2 = MinkowskiBatchNorm(planes, momentum=bn_momentum)
        self.conv3 = MinkowskiConvolution(
            planes, planes * self.expansion, kernel_size=1, dimension=d
        )
        self.norm3 = MinkowskiBatchNorm(planes * self.expansion, momentum=bn_momentum)
        self.relu = MinkowskiReLU(inplace=True)
        self.downsample = downsample

    def residual_branch(self, x: Any) -> Any:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        return self.norm3(self.conv3(out))

    def forward(self, x: Any) -> Any:
        out = self.residual_branch(x)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)
