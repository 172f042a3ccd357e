"""MinkowskiConvolution and MinkowskiConvolutionTranspose (MinkowskiEngine 0.5 signatures and names).

Output coordinates: stride 1 keeps the input set; stride s floors the input coordinates to the new
tensor stride (`CoordinateManager.stride`); a transposed convolution writes onto the cached finer
set (`CoordinateManager.transpose_target`), so U-Net skip connections align row for row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from stseg_models.sparse.conv_function import sparse_conv
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.kernel import KernelGenerator
from stseg_models.sparse.tensor import SparseTensor
from stseg_models.sparse.validation import check_channels, check_dimension


def resolve_generator(
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int],
    dilation: int | Sequence[int],
    kernel_generator: KernelGenerator | None,
    is_transpose: bool,
    dimension: int | None,
) -> KernelGenerator:
    """The layer's kernel generator: the one given, or a hypercube from the size arguments."""
    if kernel_generator is not None:
        if dimension is not None and dimension > 0 and kernel_generator.dimension != dimension:
            raise SparseInputError(
                f"kernel_generator is {kernel_generator.dimension}D but dimension={dimension}"
            )
        return kernel_generator
    if dimension is None or not isinstance(dimension, int) or dimension < 1:
        raise SparseInputError(f"dimension must be a positive integer, got {dimension!r}")
    return KernelGenerator(
        kernel_size, stride, dilation, is_transpose=is_transpose, dimension=dimension
    )


def check_input(layer: nn.Module, x: object, channels: int | None, dimension: int) -> SparseTensor:
    """The input must be a SparseTensor of the layer's dimension with `channels` channels."""
    if not isinstance(x, SparseTensor):
        raise SparseInputError(
            f"{type(layer).__name__} expects a SparseTensor, got {type(x).__name__}"
        )
    check_dimension(x.D, dimension, type(layer).__name__)
    if channels is not None:
        check_channels(x.F.shape[1], channels, type(layer).__name__)
    return x


class MinkowskiConvolutionBase(nn.Module):
    """Shared parameters: ``kernel`` [K, in, out] ([in, out] when K == 1) and optional ``bias`` [1, out]."""

    is_transpose = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = -1,
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        bias: bool = False,
        kernel_generator: KernelGenerator | None = None,
        expand_coordinates: bool = False,
        convolution_mode: object = None,
        dimension: int | None = None,
    ) -> None:
        super().__init__()
        if expand_coordinates:
            raise SparseInputError(
                "expand_coordinates=True (generative convolution) is not supported natively"
            )
        if in_channels < 1 or out_channels < 1:
            raise SparseInputError(
                f"channels must be positive, got in={in_channels}, out={out_channels}"
            )
        self.kernel_generator = resolve_generator(
            kernel_size, stride, dilation, kernel_generator, self.is_transpose, dimension
        )
        self.dimension = self.kernel_generator.dimension
        self.in_channels, self.out_channels = in_channels, out_channels
        volume = self.kernel_generator.kernel_volume
        shape = (volume, in_channels, out_channels) if volume > 1 else (in_channels, out_channels)
        self.kernel = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(1, out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(n), 1/sqrt(n)) with n = fan-in x kernel volume (MinkowskiEngine's rule)."""
        fan = self.out_channels if self.is_transpose else self.in_channels
        stdv = 1.0 / math.sqrt(fan * self.kernel_generator.kernel_volume)
        with torch.no_grad():
            self.kernel.uniform_(-stdv, stdv)
            if self.bias is not None:
                self.bias.uniform_(-stdv, stdv)

    def _out_key(self, x: SparseTensor):
        stride = self.kernel_generator.kernel_stride
        manager = x.coordinate_manager
        if self.is_transpose:
            return manager.transpose_target(x.coordinate_map_key, stride)
        if all(s == 1 for s in stride):
            return x.coordinate_map_key
        return manager.stride(x.coordinate_map_key, stride)

    def forward(self, input: SparseTensor, coordinates: object = None) -> SparseTensor:
        x = check_input(self, input, self.in_channels, self.dimension)
        if coordinates is not None:
            raise SparseInputError(
                "explicit output coordinates are not supported by the native backend"
            )
        manager = x.coordinate_manager
        out_key = self._out_key(x)
        kmap = manager.kernel_map(
            x.coordinate_map_key, out_key, self.kernel_generator, self.is_transpose
        )
        weight = self.kernel if self.kernel.dim() == 3 else self.kernel.unsqueeze(0)
        out = sparse_conv(x.F, weight, kmap)
        if self.bias is not None:
            out = out + self.bias
        return SparseTensor(out, coordinate_map_key=out_key, coordinate_manager=manager)

    def extra_repr(self) -> str:
        g = self.kernel_generator
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={list(g.kernel_size)}, "
            f"stride={list(g.kernel_stride)}, dilation={list(g.kernel_dilation)}, "
            f"region={g.region_type.name}, volume={g.kernel_volume}, bias={self.bias is not None}, D={self.dimension}"
        )


class MinkowskiConvolution(MinkowskiConvolutionBase):
    """``out[p] = sum_k kernel[k]^T in[p + s * offset_k]``, s = input tensor stride x dilation."""


class MinkowskiConvolutionTranspose(MinkowskiConvolutionBase):
    """Transpose of the strided convolution map; outputs on the cached set at tensor stride / stride."""

    is_transpose = True
