"""Residual blocks (BasicBlock, Bottleneck) and the stage builder of the U-Nets.

State-dict names follow the original: ``conv1``, ``norm1``, ``conv2``, ``norm2`` (``conv3``,
``norm3`` for the bottleneck) and ``downsample.0`` (1x1 projection) / ``downsample.1`` (its norm).
Norms inside a block use momentum 0.1 (`BLOCK_BN_MOMENTUM`), the shortcut norm the configured value,
exactly as the original, whose stage builder never passed its momentum on to the blocks.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from torch import nn

from stseg_models.zoo.layers import BLOCK_BN_MOMENTUM, Norm, Region, conv, norm


class BasicBlock(nn.Module):
    """Two 3x3x3 convolutions with a residual connection; output channels = `planes`."""

    expansion = 1

    def __init__(
        self,
        me: ModuleType,
        inplanes: int,
        planes: int,
        *,
        downsample: nn.Module | None = None,
        region: Region = "hybrid",
        norm_kind: Norm = "batch",
        dimension: int = 3,
    ) -> None:
        super().__init__()
        self.conv1 = conv(me, inplanes, planes, 3, region=region, dimension=dimension)
        self.norm1 = norm(me, norm_kind, planes, BLOCK_BN_MOMENTUM)
        self.conv2 = conv(me, planes, planes, 3, region=region, dimension=dimension)
        self.norm2 = norm(me, norm_kind, planes, BLOCK_BN_MOMENTUM)
        self.relu = me.MinkowskiReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Any) -> Any:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3x3, 1x1 expand (x4) with a residual connection; output = 4 * `planes`."""

    expansion = 4

    def __init__(
        self,
        me: ModuleType,
        inplanes: int,
        planes: int,
        *,
        downsample: nn.Module | None = None,
        region: Region = "hybrid",
        norm_kind: Norm = "batch",
        dimension: int = 3,
    ) -> None:
        super().__init__()
        wide = planes * self.expansion
        self.conv1 = conv(me, inplanes, planes, 1, dimension=dimension)
        self.norm1 = norm(me, norm_kind, planes, BLOCK_BN_MOMENTUM)
        self.conv2 = conv(me, planes, planes, 3, region=region, dimension=dimension)
        self.norm2 = norm(me, norm_kind, planes, BLOCK_BN_MOMENTUM)
        self.conv3 = conv(me, planes, wide, 1, dimension=dimension)
        self.norm3 = norm(me, norm_kind, wide, BLOCK_BN_MOMENTUM)
        self.relu = me.MinkowskiReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Any) -> Any:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        return self.relu(out + residual)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


def make_stage(
    me: ModuleType,
    block: str,
    inplanes: int,
    planes: int,
    count: int,
    *,
    region: Region,
    norm_kind: Norm,
    bn_momentum: float,
    dimension: int,
) -> tuple[nn.Sequential, int]:
    """`count` blocks turning `inplanes` into `planes * expansion` channels; returns (stage, out)."""
    block_cls = BLOCKS[block]
    out = planes * block_cls.expansion
    downsample = None
    if inplanes != out:
        downsample = nn.Sequential(
            conv(me, inplanes, out, 1, dimension=dimension),
            norm(me, norm_kind, out, bn_momentum),
        )
    layers: list[nn.Module] = [
        block_cls(
            me,
            inplanes,
            planes,
            downsample=downsample,
            region=region,
            norm_kind=norm_kind,
            dimension=dimension,
        )
    ]
    layers += [
        block_cls(me, out, planes, region=region, norm_kind=norm_kind, dimension=dimension)
        for _ in range(1, count)
    ]
    return nn.Sequential(*layers), out
