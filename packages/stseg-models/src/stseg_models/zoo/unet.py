"""The two U-Net layouts of the zoo, each written once and shaped by a `ModelSpec`.

`Res16UNet` (also the MinkUNet family): a full-resolution stem ``conv0p1s1``/``bn0``, four
encoder stages (strided conv ``conv{i}p{2^(i-1)}s2``, ``bn{i}``, ``block{i}``), four decoder stages
(``convtr{i}p{2^i}s2``, ``bntr{i}``, concatenation with the skip, ``block{i+1}``) and a 1x1
``final`` classifier with bias. Tensor strides go 1 -> 16 -> 1.

`ResUNet`: ``conv1p1s1``/``bn1``/``block1`` at full resolution, three strided stages
(``conv{i}p{2^(i-2)}s2``), three transposed stages (``convtr{i}p{2^(i-1)}s2``, ``bntr{i}``) and the
``final`` classifier on the last concatenation. Tensor strides go 1 -> 8 -> 1.

Module names and registration order reproduce the original state dicts exactly. Deliberate
deviation: the classifier reads ``planes[-1] * expansion`` channels, where the original read
``planes[-1]`` (so its Bottleneck variants could not run a forward pass, and no checkpoint of them
can exist).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from stseg_models.sparse import get_backend
from stseg_models.zoo.blocks import BLOCKS, make_stage
from stseg_models.zoo.layers import conv, conv_transpose, norm
from stseg_models.zoo.spec import ModelSpec


class _UNetBase(nn.Module):
    """Shared construction helpers; subclasses build the layout in `__init__`."""

    def __init__(
        self,
        spec: ModelSpec,
        in_channels: int,
        out_channels: int,
        conv1_kernel_size: int,
        dimension: int,
        bn_momentum: float,
        backend: str | None,
    ) -> None:
        super().__init__()
        self._me = get_backend(backend)
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channels must be positive, got in={in_channels}, out={out_channels}")
        self.spec = spec
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.D = dimension
        self._bn_momentum = bn_momentum
        self._expansion = BLOCKS[spec.block].expansion

    def _norm(self, channels: int) -> nn.Module:
        return norm(self._me, self.spec.norm, channels, self._bn_momentum)

    def _strided(self, channels: int) -> nn.Module:
        return conv(
            self._me,
            channels,
            channels,
            2,
            stride=2,
            region=self.spec.stem_region,
            dimension=self.D,
        )

    def _up(self, in_channels: int, out_channels: int) -> nn.Module:
        return conv_transpose(
            self._me,
            in_channels,
            out_channels,
            2,
            stride=2,
            region=self.spec.stem_region,
            dimension=self.D,
        )

    def _stage(self, inplanes: int, index: int) -> tuple[nn.Sequential, int]:
        return make_stage(
            self._me,
            self.spec.block,
            inplanes,
            self.spec.planes[index],
            self.spec.layers[index],
            region=self.spec.block_region,
            norm_kind=self.spec.norm,
            bn_momentum=self._bn_momentum,
            dimension=self.D,
        )


class Res16UNet(_UNetBase):
    """8-stage residual U-Net (Res16UNet*, MinkUNet*, STRes16UNet*); input [N, in] -> [N, out]."""

    def __init__(
        self,
        spec: ModelSpec,
        in_channels: int,
        out_channels: int,
        conv1_kernel_size: int = 3,
        dimension: int = 3,
        bn_momentum: float = 0.02,
        backend: str | None = None,
    ) -> None:
        super().__init__(
            spec, in_channels, out_channels, conv1_kernel_size, dimension, bn_momentum, backend
        )
        init = spec.init_dim
        self.conv0p1s1 = conv(
            self._me,
            in_channels,
            init,
            conv1_kernel_size,
            region=spec.stem_region,
            dimension=dimension,
        )
        self.bn0 = self._norm(init)
        channels = init
        skip_channels = [init]
        for i in range(1, 5):
            setattr(self, f"conv{i}p{2 ** (i - 1)}s2", self._strided(channels))
            setattr(self, f"bn{i}", self._norm(channels))
            stage, channels = self._stage(channels, i - 1)
            setattr(self, f"block{i}", stage)
            skip_channels.append(channels)
        for i in range(4, 8):
            up = spec.planes[i]
            setattr(self, f"convtr{i}p{2 ** (8 - i)}s2", self._up(channels, up))
            setattr(self, f"bntr{i}", self._norm(up))
            stage, channels = self._stage(up + skip_channels[7 - i], i)
            setattr(self, f"block{i + 1}", stage)
        self.final = conv(self._me, channels, out_channels, 1, bias=True, dimension=dimension)
        self.relu = self._me.MinkowskiReLU(inplace=True)

    def forward(self, x: Any) -> Any:
        out = self.relu(self.bn0(self.conv0p1s1(x)))
        skips = [out]
        for i in range(1, 5):
            out = getattr(self, f"conv{i}p{2 ** (i - 1)}s2")(out)
            out = self.relu(getattr(self, f"bn{i}")(out))
            out = getattr(self, f"block{i}")(out)
            skips.append(out)
        skips.pop()  # the deepest stage feeds the decoder directly
        for i in range(4, 8):
            out = getattr(self, f"convtr{i}p{2 ** (8 - i)}s2")(out)
            out = self.relu(getattr(self, f"bntr{i}")(out))
            out = getattr(self, f"block{i + 1}")(self._me.cat(out, skips.pop()))
        return self.final(out)


class ResUNet(_UNetBase):
    """6-stage residual U-Net (ResUNet*, ResUNetIN*, ResUNetINBN*); input [N, in] -> [N, out]."""

    def __init__(
        self,
        spec: ModelSpec,
        in_channels: int,
        out_channels: int,
        conv1_kernel_size: int = 3,
        dimension: int = 3,
        bn_momentum: float = 0.02,
        backend: str | None = None,
    ) -> None:
        super().__init__(
            spec, in_channels, out_channels, conv1_kernel_size, dimension, bn_momentum, backend
        )
        init = spec.init_dim
        self.conv1p1s1 = conv(
            self._me,
            in_channels,
            init,
            conv1_kernel_size,
            region=spec.stem_region,
            dimension=dimension,
        )
        self.bn1 = self._norm(init)
        stage, channels = self._stage(init, 0)
        self.block1 = stage
        skip_channels = [channels]
        for i in range(2, 5):
            setattr(self, f"conv{i}p{2 ** (i - 2)}s2", self._strided(channels))
            setattr(self, f"bn{i}", self._norm(channels))
            stage, channels = self._stage(channels, i - 1)
            setattr(self, f"block{i}", stage)
            skip_channels.append(channels)
        for i in range(4, 7):
            up = spec.planes[i]
            setattr(self, f"convtr{i}p{2 ** (7 - i)}s2", self._up(channels, up))
            setattr(self, f"bntr{i}", self._norm(up))
            channels = up + skip_channels[6 - i]
            if i < 6:
                stage, channels = self._stage(channels, i)
                setattr(self, f"block{i + 1}", stage)
        self.relu = self._me.MinkowskiReLU(inplace=True)
        self.final = conv(self._me, channels, out_channels, 1, bias=True, dimension=dimension)

    def forward(self, x: Any) -> Any:
        out = self.relu(self.bn1(self.conv1p1s1(x)))
        out = self.block1(out)
        skips = [out]
        for i in range(2, 5):
            out = getattr(self, f"conv{i}p{2 ** (i - 2)}s2")(out)
            out = self.relu(getattr(self, f"bn{i}")(out))
            out = getattr(self, f"block{i}")(out)
            skips.append(out)
        skips.pop()
        for i in range(4, 7):
            out = getattr(self, f"convtr{i}p{2 ** (7 - i)}s2")(out)
            out = self.relu(getattr(self, f"bntr{i}")(out))
            out = self._me.cat(out, skips.pop())
            if i < 6:
                out = getattr(self, f"block{i + 1}")(out)
        return self.final(out)


LAYOUTS: dict[str, type[_UNetBase]] = {"res16": Res16UNet, "resunet": ResUNet}
