"""MinkowskiChannelwiseConvolution: depthwise sparse convolution, one weight per (offset, channel).

``out[p, c] = sum_k kernel[k, c] * in[p + s * offset_k, c] (+ bias[0, c])``, s = input tensor
stride x dilation. Parameters as MinkowskiEngine 0.5.4: ``kernel`` [K, C], ``bias`` [1, C].
Output coordinates as a convolution: the input set at stride 1, floored to the new tensor stride
otherwise (the set a strided convolution of the same input gets).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from stseg_models.sparse.common import MinkowskiModuleBase
from stseg_models.sparse.conv import (
    check_input,
    output_key,
    resolve_generator,
    strided_output_key,
)
from stseg_models.sparse.coordinate_manager import CoordinateMapKey
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.kernel import KernelGenerator
from stseg_models.sparse.kernel_map import KernelMap
from stseg_models.sparse.tensor import SparseTensor


def channelwise_conv(feats: torch.Tensor, kernel: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """out [N_out, C] = sum over pairs (i, o, k) of feats[i] * kernel[k] into row o (differentiable)."""
    out = feats.new_zeros((kmap.num_out, feats.shape[1]))
    if kmap.in_idx.numel() == 0:
        return out
    in_idx, out_idx = kmap.in_idx.long(), kmap.out_idx.long()
    products = feats.index_select(0, in_idx) * kernel.index_select(0, kmap.offset_ids())
    return out.index_add(0, out_idx, products)


class MinkowskiChannelwiseConvolution(MinkowskiModuleBase):
    """Depthwise convolution (MinkowskiEngine 0.5.4 signature; ``dimension`` is required)."""

    def __init__(
        self,
        in_channels: int,
        kernel_size: int | Sequence[int] = -1,
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        bias: bool = False,
        kernel_generator: KernelGenerator | None = None,
        dimension: int = -1,
    ) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise SparseInputError(f"in_channels must be a positive integer, got {in_channels!r}")
        self.kernel_generator = resolve_generator(
            kernel_size, stride, dilation, kernel_generator, False, dimension
        )
        self.in_channels = in_channels
        self.dimension = self.kernel_generator.dimension
        self.kernel_shape = (self.kernel_generator.kernel_volume, in_channels)
        self.kernel = nn.Parameter(torch.empty(self.kernel_shape))
        self.bias = nn.Parameter(torch.empty(1, in_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self, is_transpose: bool = False) -> None:
        """Uniform(-1/sqrt(n), 1/sqrt(n)), n = channels x kernel volume (MinkowskiEngine's rule)."""
        stdv = 1.0 / math.sqrt(self.in_channels * self.kernel_generator.kernel_volume)
        with torch.no_grad():
            self.kernel.uniform_(-stdv, stdv)
            if self.bias is not None:
                self.bias.uniform_(-stdv, stdv)

    def _out_key(self, x: SparseTensor, coords: Any) -> CoordinateMapKey:
        # MinkowskiEngine 0.5.4 ignores `expand_coordinates` here: always the plain strided set
        if coords is None:
            stride = self.kernel_generator.kernel_stride
            return strided_output_key(x.coordinate_manager, x.coordinate_map_key, stride)
        if isinstance(coords, (SparseTensor, CoordinateMapKey)):
            return output_key(x, coords, 1)  # an existing set of the input's manager
        raise SparseInputError(
            "MinkowskiChannelwiseConvolution: `coords` must be None, a SparseTensor of the input's "
            "coordinate manager or one of its coordinate keys"
        )

    def forward(self, input: SparseTensor, coords: Any = None) -> SparseTensor:
        x = check_input(self, input, self.in_channels, self.dimension)
        manager = x.coordinate_manager
        out_key = self._out_key(x, coords)
        kmap = manager.kernel_map(x.coordinate_map_key, out_key, self.kernel_generator)
        out = channelwise_conv(x.F, self.kernel, kmap)
        if self.bias is not None:
            out = out + self.bias
        return SparseTensor(out, coordinate_map_key=out_key, coordinate_manager=manager)

    def __repr__(self) -> str:
        g = self.kernel_generator
        return (
            f"{type(self).__name__}(in={self.in_channels}, region_type={g.region_type.name}, "
            f"kernel_size={list(g.kernel_size)}, stride={list(g.kernel_stride)}, "
            f"dilation={list(g.kernel_dilation)})"
        )
