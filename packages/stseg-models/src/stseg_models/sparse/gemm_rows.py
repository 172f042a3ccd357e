"""Row counts of the convolution passes' GEMMs in half precision on CPU: a few sizes, not thousands.

On CPU, PyTorch runs bf16 / fp16 `torch.mm` through oneDNN, which builds a kernel (a "primitive",
0.5-1 ms) for every new shape and keeps the last `ONEDNN_PRIMITIVE_CACHE_CAPACITY` (1024 by
default). A convolution pass multiplies one piece per chunk and offset, and the pieces' row counts
follow the point cloud: one Res16UNet34C training step on a 218k-voxel room made 27,641 GEMMs of
6,257 shapes, so nearly every GEMM paid for a new kernel and bf16 ran slower than float32 (12.1 s
vs 9.4 s a step). Float32 GEMMs go to MKL, which builds nothing per shape.

So under half precision a pass computes each GEMM on `padded_rows(m)` rows: four sizes per octave
(at most 25 % more rows, about 8 % more arithmetic in that step), from a buffer that has those
rows. The extra output rows are never read; where the rows are the reduction of a weight gradient,
both operands' extra rows are zero, so the sum is unchanged. GEMMs over every row of a layer (1x1
kernels, the zero offset's weight gradient) run as pieces of a fixed size and one padded tail, and
the small-map routes (`conv_function._is_small`, `_is_batched`), whose GEMMs take the cloud's own
sizes, are not used. One step then has about a thousand shapes, every later step the same ones,
and `ensure_primitive_cache` makes room for them.

Each cached kernel also holds memory (about 0.63 MiB measured here), so the cache size is a
ceiling on that memory too: without the padding, a run with a large cache grew by ~500 MiB a step.
"""

from __future__ import annotations

import os

import torch

PRIMITIVE_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
# A cached bf16 GEMM kernel holds about 0.63 MiB here (2,000 shapes: +1.26 GiB of RSS), so the
# capacity is also a memory ceiling: 2048 kernels, at most ~1.3 GiB. Res16UNet34C's padded passes
# use about 1,000 shapes on a 218k-voxel room (oneDNN's default of 1024 is just too small for it).
PRIMITIVE_CACHE_CAPACITY = 2048
STEPS_PER_OCTAVE = 4
SMALLEST = 64  # below 256 rows: multiples of 64


def padded_rows(rows: int) -> int:
    """The GEMM row count used for `rows` rows: the next multiple of 64 up to 256, then the next of
    four sizes per octave (256, 320, 384, 448, 512, 640, ...)."""
    if rows <= 4 * SMALLEST:
        return -(-rows // SMALLEST) * SMALLEST
    step = (1 << ((rows - 1).bit_length() - 1)) // STEPS_PER_OCTAVE
    return -(-rows // step) * step


def pads_rows(tensor: torch.Tensor) -> bool:
    """Whether passes over `tensor` pad their GEMM rows: half precision (bf16 / fp16) on CPU."""
    return tensor.device.type == "cpu" and tensor.dtype in (torch.bfloat16, torch.float16)


def ensure_primitive_cache() -> None:
    """Ask oneDNN for a primitive cache of `PRIMITIVE_CACHE_CAPACITY` kernels unless the user set
    `ONEDNN_PRIMITIVE_CACHE_CAPACITY`.

    oneDNN reads the variable once, when it builds its first primitive, so this takes effect only
    if no half-precision GEMM (or other oneDNN primitive) has run in the process yet; importing
    `stseg_models.sparse` calls it. With the default 1024 a network whose passes use more shapes
    than that cycles through the cache and rebuilds every kernel at every step.
    """
    os.environ.setdefault(PRIMITIVE_CACHE_ENV, str(PRIMITIVE_CACHE_CAPACITY))
