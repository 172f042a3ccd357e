"""MinkowskiConvolution and MinkowskiConvolutionTranspose (MinkowskiEngine 0.5 signatures and names).

Output coordinates: stride 1 keeps the input set; stride s floors the input coordinates to the new
tensor stride (`CoordinateManager.stride`); a transposed convolution of a tensor at tensor stride t
writes onto the set keyed (t / s, "") of the same manager, whatever the input's key suffix, and
generates that set (the kernel footprint of the input at t / s) when the manager has none, e.g. for
a tensor created at ``tensor_stride=2`` (`CoordinateManager.transpose_target`, MinkowskiEngine
0.5.4's measured rule); a U-Net from a default-keyed input thus lands on its way-down sets.
``expand_coordinates=True`` and `MinkowskiGenerativeConvolutionTranspose` always generate that
footprint as a new set (`CoordinateManager.expand`). ``layer(x, coordinates=...)`` computes the
outputs on given coordinates (`output_key`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from stseg_models.sparse.common import MinkowskiModuleBase
from stseg_models.sparse.conv_function import sparse_conv
from stseg_models.sparse.coordinate_manager import CoordinateManager, CoordinateMapKey
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.kernel import KernelGenerator
from stseg_models.sparse.modes import ConvolutionMode
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


def output_key(
    x: SparseTensor, coordinates: object, tensor_stride: int | Sequence[int]
) -> CoordinateMapKey:
    """Key of explicitly requested output coordinates (MinkowskiEngine's `_get_coordinate_map_key`).

    A coordinate tensor [M, 1+D] is inserted into the input's manager at `tensor_stride`
    (duplicates dropped, first occurrences kept); a `CoordinateMapKey` or a `SparseTensor` of the
    same manager names an existing set.
    """
    manager = x.coordinate_manager
    if isinstance(coordinates, SparseTensor):
        if coordinates.coordinate_manager is not manager:
            raise SparseInputError(
                "output coordinates: the SparseTensor comes from a different coordinate manager"
            )
        return coordinates.coordinate_map_key
    if isinstance(coordinates, CoordinateMapKey):
        manager.get_coordinates(coordinates)  # raises if the key is not in this manager
        return coordinates
    if isinstance(coordinates, torch.Tensor):
        coords = coordinates
        if coords.is_floating_point():
            coords = torch.floor(coords).int()
        key, _ = manager.insert_and_map(coords.to(x.device), tensor_stride)
        return key
    raise SparseInputError(
        "coordinates must be an int tensor [M, 1+D], a CoordinateMapKey or a SparseTensor, got "
        f"{type(coordinates).__name__}"
    )


def layer_output_key(
    x: SparseTensor, generator: KernelGenerator, is_transpose: bool
) -> CoordinateMapKey:
    """Output set of a convolution or pooling layer without explicit output coordinates."""
    return default_output_key(x.coordinate_manager, x.coordinate_map_key, generator, is_transpose)


def default_output_key(
    manager: CoordinateManager,
    key: CoordinateMapKey,
    generator: KernelGenerator,
    is_transpose: bool,
) -> CoordinateMapKey:
    """Output set of a (transposed) convolution or pooling of the set `key` (layers and Functions).

    Generative (``expand_coordinates``): the kernel footprint as a new set. Transposed: the set at
    ``tensor stride / kernel stride`` with key suffix "" (`CoordinateManager.transpose_target`).
    Otherwise the input set (stride 1) or the input floored to the new stride.
    """
    stride = generator.kernel_stride
    if generator.expand_coordinates:
        if is_transpose:
            target = manager.transpose_stride(key, stride)
            return manager.expand(key, generator, target)
        return manager.expand(
            key,
            generator,
            tuple(a * b for a, b in zip(key.tensor_stride, stride, strict=True)),
            region_tensor_stride=key.tensor_stride,
        )
    if is_transpose:
        return manager.transpose_target(key, stride, generator)
    return strided_output_key(manager, key, stride)


def strided_output_key(
    manager: CoordinateManager, key: CoordinateMapKey, stride: Sequence[int]
) -> CoordinateMapKey:
    """Output set of a plain (not generative, not transposed) layer: the input set at stride 1,
    the input floored to ``tensor stride x stride`` otherwise (cached by the manager)."""
    if all(s == 1 for s in stride):
        return key
    return manager.stride(key, stride)


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


class MinkowskiConvolutionBase(MinkowskiModuleBase):
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
        if in_channels < 1 or out_channels < 1:
            raise SparseInputError(
                f"channels must be positive, got in={in_channels}, out={out_channels}"
            )
        self.kernel_generator = resolve_generator(
            kernel_size, stride, dilation, kernel_generator, self.is_transpose, dimension
        )
        # MinkowskiEngine sets the layer's flag on a given generator too
        self.kernel_generator.expand_coordinates = bool(expand_coordinates)
        self.dimension = self.kernel_generator.dimension
        self.in_channels, self.out_channels = in_channels, out_channels
        # kept for code that reads it (MinkowskiEngine's functional calls pass conv.convolution_mode);
        # the native engine has one GEMM strategy, so the value does not change the result
        self.convolution_mode = (
            ConvolutionMode.DEFAULT if convolution_mode is None else convolution_mode
        )
        volume = self.kernel_generator.kernel_volume
        # MinkowskiEngine keeps [in, out] only for its matrix-multiply case (size 1, stride 1)
        pointwise = volume == 1 and all(s == 1 for s in self.kernel_generator.kernel_stride)
        shape = (in_channels, out_channels) if pointwise else (volume, in_channels, out_channels)
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

    def forward(self, input: SparseTensor, coordinates: object = None) -> SparseTensor:
        """Convolve `input`; outputs on `coordinates` (int [M, 1+D], key or SparseTensor) if given."""
        x = check_input(self, input, self.in_channels, self.dimension)
        manager, gen = x.coordinate_manager, self.kernel_generator
        if coordinates is None or self._is_pointwise():
            out_key = layer_output_key(x, gen, self.is_transpose)
        else:
            # MinkowskiEngine passes the expand flag where the tensor stride goes: 0 or 1 per axis
            out_key = output_key(x, coordinates, int(gen.expand_coordinates))
        kmap = manager.kernel_map_for(x.coordinate_map_key, out_key, gen, self.is_transpose)
        weight = self.kernel if self.kernel.dim() == 3 else self.kernel.unsqueeze(0)
        out = sparse_conv(x.F, weight, kmap, self.bias)  # the bias added in the same autograd node
        return SparseTensor(out, coordinate_map_key=out_key, coordinate_manager=manager)

    def _out_key(self, x: SparseTensor) -> CoordinateMapKey:
        """Output set without explicit coordinates (`layer_output_key`)."""
        return layer_output_key(x, self.kernel_generator, self.is_transpose)

    def _is_pointwise(self) -> bool:
        """MinkowskiEngine multiplies a size-1, stride-1 kernel directly on the input set."""
        g = self.kernel_generator
        return g.kernel_volume == 1 and all(s == 1 for s in g.kernel_stride)

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


class MinkowskiGenerativeConvolutionTranspose(MinkowskiConvolutionBase):
    """Transposed convolution that always generates its outputs: every input's kernel footprint.

    Output tensor stride = input stride / stride; output coordinates = ``c + offset_k * out_stride *
    dilation`` for every input coordinate c and kernel offset k (GSDN, Gwak et al. 2020).
    """

    is_transpose = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = -1,
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        bias: bool = False,
        kernel_generator: KernelGenerator | None = None,
        convolution_mode: object = None,
        dimension: int | None = None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, dilation, bias, kernel_generator,
            expand_coordinates=True, convolution_mode=convolution_mode, dimension=dimension,
        )  # fmt: skip
