"""Convolution and normalisation factories shared by every network of the zoo.

The original code chose a kernel *region* per layer ("conv type"); three occur in the zoo:

* ``"hypercube"``: a k^D box over every axis (MinkUNet layers, 1x1 projections, tesseract blocks).
* ``"spatial"``: the box over the three spatial axes, size 1 (and stride 1) along time in 4D
  (stems, strided and transposed convolutions of the Res16UNet / ResUNet families).
* ``"hybrid"``: spatial box plus a temporal cross, i.e. 27 + 2 offsets for k = 3 in 4D (the
  residual blocks of the Res16UNet / ResUNet families). In 3D it is the plain box.

Every factory takes the sparse backend module `me` first (`stseg_models.sparse.get_backend()`:
the native engine or MinkowskiEngine itself), so one network definition serves both.

Norms: ``"batch"``, ``"instance"`` or ``"instance_batch"`` (instance norm then batch norm, in an
``nn.Sequential`` as the original wrote it, so checkpoint names are ``norm1.0.*`` / ``norm1.1.bn.*``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Literal

import torch
from torch import nn

from stseg_models.sparse.errors import SparseBackendError

Region = Literal["hypercube", "spatial", "hybrid"]
Norm = Literal["batch", "instance", "instance_batch"]

REGIONS: tuple[str, ...] = ("hypercube", "spatial", "hybrid")
NORMS: tuple[str, ...] = ("batch", "instance", "instance_batch")

#: Batch-norm momentum inside residual blocks: the original never passed its configured value there.
BLOCK_BN_MOMENTUM = 0.1


def _per_axis(value: int, region: Region, dimension: int) -> list[int]:
    """`value` on the spatial axes, and 1 along time for the "spatial" region."""
    if region == "spatial":
        return [value] * 3 + [1] * (dimension - 3)
    return [value] * dimension


def kernel_generator(
    me: ModuleType, kernel_size: int, stride: int, dilation: int, region: Region, dimension: int
) -> Any:
    """The MinkowskiEngine kernel generator for one of the zoo's regions."""
    if region not in REGIONS:
        raise ValueError(f"unknown kernel region {region!r}; expected one of {REGIONS}")
    axis_types = None
    if region == "hybrid" and dimension > 3:
        if not hasattr(me.RegionType, "HYBRID"):
            # MinkowskiEngine 0.5.4 dropped the hybrid region (its kernel-volume code for it is
            # commented out) and its CUSTOM region fails on a tensor of offsets, so the 4D
            # cube-plus-temporal-cross kernel of the ST networks cannot be built there at all.
            raise SparseBackendError(
                f"{getattr(me, '__name__', 'this backend')} cannot build the 4D hybrid kernel "
                "(spatial cube + temporal cross) of the STRes16UNet networks; use the native "
                "backend (STSEG_SPARSE_BACKEND=native)"
            )
        axis_types = [me.RegionType.HYPER_CUBE] * 3 + [me.RegionType.HYPER_CROSS] * (dimension - 3)
    # the offsets table is index data, never a parameter: keep it on the CPU even when a model is
    # laid out under `torch.device("meta")` (parameter counting, cheap test initialisation)
    with torch.device("cpu"):
        return me.KernelGenerator(
            kernel_size=_per_axis(kernel_size, region, dimension),
            stride=_per_axis(stride, region, dimension),
            dilation=_per_axis(dilation, region, dimension),
            region_type=me.RegionType.HYPER_CUBE,
            axis_types=axis_types,
            dimension=dimension,
        )


def conv(
    me: ModuleType,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    bias: bool = False,
    region: Region = "hypercube",
    dimension: int = 3,
) -> nn.Module:
    """A sparse convolution over `region`; its weight is ``.kernel`` of shape [K, in, out]."""
    generator = kernel_generator(me, kernel_size, stride, dilation, region, dimension)
    return me.MinkowskiConvolution(
        in_channels,
        out_channels,
        kernel_size=list(generator.kernel_size),
        stride=list(generator.kernel_stride),
        dilation=list(generator.kernel_dilation),
        bias=bias,
        kernel_generator=generator,
        dimension=dimension,
    )


def conv_transpose(
    me: ModuleType,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    region: Region = "hypercube",
    dimension: int = 3,
) -> nn.Module:
    """A transposed sparse convolution writing onto the cached finer coordinates (no bias)."""
    generator = kernel_generator(me, kernel_size, stride, 1, region, dimension)
    return me.MinkowskiConvolutionTranspose(
        in_channels,
        out_channels,
        kernel_size=list(generator.kernel_size),
        stride=list(generator.kernel_stride),
        dilation=1,
        bias=False,
        kernel_generator=generator,
        dimension=dimension,
    )


def norm(me: ModuleType, kind: Norm, channels: int, momentum: float) -> nn.Module:
    """Batch, instance, or instance-then-batch normalisation over `channels` features."""
    if kind == "batch":
        return me.MinkowskiBatchNorm(channels, momentum=momentum)
    if kind == "instance":
        return me.MinkowskiInstanceNorm(channels)
    if kind == "instance_batch":
        return nn.Sequential(
            me.MinkowskiInstanceNorm(channels), me.MinkowskiBatchNorm(channels, momentum=momentum)
        )
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORMS}")
