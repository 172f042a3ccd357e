"""MinkowskiNetwork: MinkowskiEngine 0.5.4's abstract base class of sparse networks (``self.D``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import nn

from stseg_models.sparse.errors import SparseInputError


class MinkowskiNetwork(nn.Module, ABC):
    """``nn.Module`` with the spatial dimension `D`; subclasses implement `forward`."""

    def __init__(self, D: int) -> None:
        super().__init__()
        self.D = D

    @abstractmethod
    def forward(self, x: Any) -> Any:
        """The network's computation (subclasses)."""

    def init(self, x: Any) -> None:
        """Check that `x` is a sparse tensor of this network's dimension.

        MinkowskiEngine 0.5.4's version calls a method that no longer exists (``get_nrows``) and
        always raises; coordinates need no initialisation in 0.5, so a valid input passes.
        """
        from stseg_models.sparse.wrap import is_sparse_like

        if not is_sparse_like(x):
            raise SparseInputError(
                f"{type(self).__name__}.init expects a SparseTensor or TensorField, got {type(x).__name__}"
            )
        if x.D != self.D:
            raise SparseInputError(
                f"{type(self).__name__} is {self.D}-dimensional but the input is {x.D}-dimensional"
            )
