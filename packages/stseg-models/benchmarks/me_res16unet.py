"""Res16UNet34C written directly on MinkowskiEngine 0.5.4, the way its users write networks.

No stseg layer, factory or kernel generator sits between this network and MinkowskiEngine: every
layer is ``ME.MinkowskiConvolution(..., kernel_size=k, stride=s, dimension=3)``,
``ME.MinkowskiBatchNorm``, ``ME.MinkowskiReLU`` and ``ME.cat``, so `bench_sparse.py` times
MinkowskiEngine as a user of it would run it. Module names match stseg's `Res16UNet34C` (and the
original model zoo), so ``load_state_dict(native_model.state_dict())`` gives both the same weights.

    net = Res16UNet34C(ME, in_channels=3, out_channels=20)   # ME = the MinkowskiEngine module
    logits = net(ME.SparseTensor(feats [N, 3], coords int [N, 4]))  # .F: [N, 20]
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from torch import nn

PLANES = (32, 64, 128, 256, 256, 128, 96, 96)
LAYERS = (2, 3, 4, 6, 2, 2, 2, 2)
INIT_DIM = 32
BN_MOMENTUM = 0.02  # stem, strided, transposed and shortcut norms; residual blocks use 0.1


class BasicBlock(nn.Module):
    """conv3 - BN - ReLU - conv3 - BN, plus the (projected) input, then ReLU."""

    def __init__(self, ME: ModuleType, inplanes: int, planes: int, downsample: Any = None) -> None:
        super().__init__()
        self.conv1 = ME.MinkowskiConvolution(inplanes, planes, kernel_size=3, dimension=3)
        self.norm1 = ME.MinkowskiBatchNorm(planes, momentum=0.1)
        self.conv2 = ME.MinkowskiConvolution(planes, planes, kernel_size=3, dimension=3)
        self.norm2 = ME.MinkowskiBatchNorm(planes, momentum=0.1)
        self.relu = ME.MinkowskiReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Any) -> Any:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + residual)


def _stage(ME: ModuleType, inplanes: int, planes: int, count: int) -> nn.Sequential:
    down = None
    if inplanes != planes:
        down = nn.Sequential(
            ME.MinkowskiConvolution(inplanes, planes, kernel_size=1, dimension=3),
            ME.MinkowskiBatchNorm(planes, momentum=BN_MOMENTUM),
        )
    blocks = [BasicBlock(ME, inplanes, planes, down)]
    blocks += [BasicBlock(ME, planes, planes) for _ in range(1, count)]
    return nn.Sequential(*blocks)


class Res16UNet34C(nn.Module):
    """Four strided stages (tensor stride 1 -> 16), four transposed stages with skips, 1x1 head."""

    def __init__(self, ME: ModuleType, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.ME = ME
        self.conv0p1s1 = ME.MinkowskiConvolution(in_channels, INIT_DIM, kernel_size=3, dimension=3)
        self.bn0 = ME.MinkowskiBatchNorm(INIT_DIM, momentum=BN_MOMENTUM)
        channels, skips = INIT_DIM, [INIT_DIM]
        for i in range(1, 5):
            conv = ME.MinkowskiConvolution(channels, channels, kernel_size=2, stride=2, dimension=3)
            setattr(self, f"conv{i}p{2 ** (i - 1)}s2", conv)
            setattr(self, f"bn{i}", ME.MinkowskiBatchNorm(channels, momentum=BN_MOMENTUM))
            setattr(self, f"block{i}", _stage(ME, channels, PLANES[i - 1], LAYERS[i - 1]))
            channels = PLANES[i - 1]
            skips.append(channels)
        for i in range(4, 8):
            up = ME.MinkowskiConvolutionTranspose(
                channels, PLANES[i], kernel_size=2, stride=2, dimension=3
            )
            setattr(self, f"convtr{i}p{2 ** (8 - i)}s2", up)
            setattr(self, f"bntr{i}", ME.MinkowskiBatchNorm(PLANES[i], momentum=BN_MOMENTUM))
            cat = PLANES[i] + skips[7 - i]
            setattr(self, f"block{i + 1}", _stage(ME, cat, PLANES[i], LAYERS[i]))
            channels = PLANES[i]
        self.final = ME.MinkowskiConvolution(
            channels, out_channels, kernel_size=1, bias=True, dimension=3
        )
        self.relu = ME.MinkowskiReLU(inplace=True)

    def forward(self, x: Any) -> Any:
        out = self.relu(self.bn0(self.conv0p1s1(x)))
        skips = [out]
        for i in range(1, 5):
            out = self.relu(
                getattr(self, f"bn{i}")(getattr(self, f"conv{i}p{2 ** (i - 1)}s2")(out))
            )
            out = getattr(self, f"block{i}")(out)
            skips.append(out)
        skips.pop()  # the deepest stage feeds the decoder directly
        for i in range(4, 8):
            out = getattr(self, f"convtr{i}p{2 ** (8 - i)}s2")(out)
            out = self.relu(getattr(self, f"bntr{i}")(out))
            out = getattr(self, f"block{i + 1}")(self.ME.cat(out, skips.pop()))
        return self.final(out)
