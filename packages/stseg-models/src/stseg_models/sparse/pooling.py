"""Local pooling (max / average / sum), pooling transpose and global pooling layers.

Local pooling uses the same kernel maps and output coordinates as convolution. Average pooling
divides by the number of neighbours actually present (MinkowskiEngine semantics, not the kernel
volume). MinkowskiPoolingTranspose unpools onto the cached finer set (or the generated footprint)
and sums the coarse inputs that reach each output: MinkowskiEngine 0.5.4's docstring says it
divides by their number, but its kernel does not (measured with kernel size 3; with kernel size =
stride every output has one contributor, so both readings agree). Global pooling reduces every scene (batch
index) to one row at the origin, rows sorted by batch index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from stseg_models.sparse.common import MinkowskiModuleBase
from stseg_models.sparse.conv import check_input, layer_output_key, output_key, resolve_generator
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.kernel import KernelGenerator
from stseg_models.sparse.modes import PoolingMode
from stseg_models.sparse.pooling_function import lowest_where_empty, max_pool, segment_max, sum_pool
from stseg_models.sparse.tensor import SparseTensor
from stseg_models.sparse.wrap import batch_index, require_sparse_like


class MinkowskiPoolingBase(MinkowskiModuleBase):
    """Shared kernel handling; subclasses choose `pooling_mode`."""

    is_transpose = False
    pooling_mode = PoolingMode.LOCAL_AVG_POOLING

    def __init__(
        self,
        kernel_size: int | Sequence[int] = -1,
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        kernel_generator: KernelGenerator | None = None,
        dimension: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_generator = resolve_generator(
            kernel_size, stride, dilation, kernel_generator, self.is_transpose, dimension
        )
        self.dimension = self.kernel_generator.dimension

    def forward(self, input: SparseTensor, coordinates: Any = None) -> SparseTensor:
        """Pool `input`; outputs on `coordinates` (int [M, 1+D], key or SparseTensor) if given.

        A coordinate tensor is inserted at tensor stride 1, as MinkowskiEngine does.
        """
        x = check_input(self, input, None, self.dimension)
        manager, gen = x.coordinate_manager, self.kernel_generator
        if coordinates is None:
            out_key = layer_output_key(x, gen, self.is_transpose)
        else:
            out_key = output_key(x, coordinates, 1)
        kmap = manager.kernel_map_for(x.coordinate_map_key, out_key, gen, self.is_transpose)
        if self.pooling_mode == PoolingMode.LOCAL_MAX_POOLING:
            # an output can lack neighbours: on given coordinates, or when the kernel is smaller
            # than the stride (kernel 3, stride 4: inputs at 4k+2 make the output 4k, out of reach)
            out = lowest_where_empty(max_pool(x.F, kmap), kmap)
        else:
            # MinkowskiEngine 0.5.4's unpooling sums its contributors (measured: k = 3 sums)
            average = self.pooling_mode == PoolingMode.LOCAL_AVG_POOLING and not self.is_transpose
            out = sum_pool(x.F, kmap, average=average)
        return SparseTensor(out, coordinate_map_key=out_key, coordinate_manager=manager)

    def extra_repr(self) -> str:
        g = self.kernel_generator
        return f"kernel_size={list(g.kernel_size)}, stride={list(g.kernel_stride)}, dilation={list(g.kernel_dilation)}"


class MinkowskiMaxPooling(MinkowskiPoolingBase):
    """Channel-wise maximum over the present neighbours."""

    pooling_mode = PoolingMode.LOCAL_MAX_POOLING


class MinkowskiAvgPooling(MinkowskiPoolingBase):
    """Mean over the present neighbours (divides by their count)."""

    pooling_mode = PoolingMode.LOCAL_AVG_POOLING


class MinkowskiSumPooling(MinkowskiPoolingBase):
    """Sum over the present neighbours."""

    pooling_mode = PoolingMode.LOCAL_SUM_POOLING


class MinkowskiPoolingTranspose(MinkowskiPoolingBase):
    """Unpooling onto the cached finer coordinates: the sum of the contributing coarse rows."""

    is_transpose = True
    pooling_mode = PoolingMode.LOCAL_AVG_POOLING

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int],
        dilation: int | Sequence[int] = 1,
        kernel_generator: KernelGenerator | None = None,
        expand_coordinates: bool = False,
        dimension: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, dilation, kernel_generator, dimension)
        if kernel_generator is None:  # MinkowskiEngine only applies the flag to its own generator
            self.kernel_generator.expand_coordinates = bool(expand_coordinates)


# the reduction each global PoolingMode stands for (MinkowskiEngine's DEFAULT, KERNEL and
# PYTORCH_INDEX variants are implementations of the same reduction and give the same values)
_GLOBAL_REDUCTION = {
    PoolingMode.GLOBAL_SUM_POOLING_DEFAULT: "sum",
    PoolingMode.GLOBAL_SUM_POOLING_KERNEL: "sum",
    PoolingMode.GLOBAL_SUM_POOLING_PYTORCH_INDEX: "sum",
    PoolingMode.GLOBAL_AVG_POOLING_DEFAULT: "avg",
    PoolingMode.GLOBAL_AVG_POOLING_KERNEL: "avg",
    PoolingMode.GLOBAL_AVG_POOLING_PYTORCH_INDEX: "avg",
    PoolingMode.GLOBAL_MAX_POOLING_DEFAULT: "max",
    PoolingMode.GLOBAL_MAX_POOLING_KERNEL: "max",
    PoolingMode.GLOBAL_MAX_POOLING_PYTORCH_INDEX: "max",
}


def global_reduction(mode: Any) -> str:
    """The reduction ("sum", "avg" or "max") of a global `PoolingMode`; anything else is an error."""
    if not isinstance(mode, PoolingMode) or mode not in _GLOBAL_REDUCTION:
        raise SparseInputError(
            "global pooling needs a global PoolingMode (GLOBAL_SUM/AVG/MAX_POOLING_*), "
            f"got {mode!r}"
        )
    return _GLOBAL_REDUCTION[mode]


class MinkowskiGlobalPooling(MinkowskiModuleBase):
    """Reduce each scene to one row at the origin; `mode` picks the reduction (average by default).

    As in MinkowskiEngine 0.5.4 the reduction is the one `pooling_mode` names, whichever class
    holds it (``MinkowskiGlobalPooling(PoolingMode.GLOBAL_MAX_POOLING_KERNEL)`` max-pools); the
    subclasses only change the default mode.
    """

    DEFAULT_MODE = PoolingMode.GLOBAL_AVG_POOLING_PYTORCH_INDEX

    def __init__(self, mode: PoolingMode | None = None) -> None:
        super().__init__()
        self.pooling_mode = self.DEFAULT_MODE if mode is None else mode
        global_reduction(self.pooling_mode)  # a bad mode fails here, not at the first forward

    @property
    def reduction(self) -> str:
        return global_reduction(self.pooling_mode)

    def forward(self, input: Any, coordinates: Any = None) -> SparseTensor:
        require_sparse_like(input, type(self).__name__)
        rows, ids = batch_index(input)
        b, feats = ids.numel(), input.F
        reduction = self.reduction
        if reduction == "max":
            out = segment_max(feats, rows, b)
        else:
            out = feats.new_zeros((b, feats.shape[1])).index_add(0, rows, feats)
            if reduction == "avg":
                out = out / torch.bincount(rows, minlength=b).to(feats.dtype).unsqueeze(1)
        manager = input.coordinate_manager
        key = manager.origin_for(ids)  # shared per batch-index set, as MinkowskiEngine's origin
        return SparseTensor(out, coordinate_map_key=key, coordinate_manager=manager)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode=PoolingMode.{self.pooling_mode.name})"


class MinkowskiGlobalAvgPooling(MinkowskiGlobalPooling):
    DEFAULT_MODE = PoolingMode.GLOBAL_AVG_POOLING_PYTORCH_INDEX


class MinkowskiGlobalSumPooling(MinkowskiGlobalPooling):
    DEFAULT_MODE = PoolingMode.GLOBAL_SUM_POOLING_PYTORCH_INDEX


class MinkowskiGlobalMaxPooling(MinkowskiGlobalPooling):
    DEFAULT_MODE = PoolingMode.GLOBAL_MAX_POOLING_PYTORCH_INDEX
