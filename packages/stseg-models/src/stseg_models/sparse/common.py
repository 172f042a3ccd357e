"""MinkowskiEngine 0.5.4's ``MinkowskiCommon`` helpers: argument conversion and the layer base class.

`convert_to_int_list` / `convert_to_int_tensor` expand a scalar to one value per spatial axis or
check a per-axis sequence, as MinkowskiEngine's layers do with ``kernel_size``, ``stride`` and
``tensor_stride``. `MinkowskiModuleBase` is the (empty) `torch.nn.Module` subclass that
MinkowskiEngine derives its layers from, so ``class MyLayer(ME.MinkowskiModuleBase)`` works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from stseg_models.sparse.errors import SparseInputError


class MinkowskiModuleBase(nn.Module):
    """Base class of MinkowskiEngine layers; adds nothing to `torch.nn.Module`."""


def _is_scalar(arg: Any) -> bool:
    return bool(np.isscalar(arg)) or (isinstance(arg, torch.Tensor) and arg.dim() == 0)


def convert_to_int_list(arg: Any, dimension: int) -> list:
    """``[arg] * dimension`` for a scalar, ``list(arg)`` for a sequence / array / tensor of that length.

    As MinkowskiEngine, a list is returned as it is (the same object) and the elements of a
    sequence are not converted; a scalar is converted with ``int``.
    """
    if isinstance(arg, list):
        if len(arg) != dimension:
            raise SparseInputError(f"expected {dimension} values, got {arg!r}")
        return arg
    if isinstance(arg, (Sequence, np.ndarray)) or (isinstance(arg, torch.Tensor) and arg.dim() > 0):
        items = list(arg)
        if len(items) != dimension:
            raise SparseInputError(f"expected {dimension} values, got {arg!r}")
        return items
    if _is_scalar(arg):
        return [int(arg) for _ in range(dimension)]
    raise SparseInputError(f"input must be a scalar or a sequence, got {type(arg).__name__}")


def convert_to_int_tensor(arg: Any, dimension: int) -> torch.Tensor:
    """An int32 CPU tensor [dimension] from a scalar, a sequence, an array or an integer tensor.

    A CPU int32 tensor with ``dimension`` elements is returned as it is (the same object), as
    MinkowskiEngine does. Other integer tensors are converted to int32 (MinkowskiEngine 0.5.4
    rejects them with ValueError; converting is the evident intent).
    """
    if isinstance(arg, torch.Tensor) and arg.dim() > 0:
        if arg.is_floating_point() or arg.dtype == torch.bool:
            raise SparseInputError(f"expected an integer tensor, got dtype {arg.dtype}")
        if arg.numel() != dimension:
            raise SparseInputError(f"expected {dimension} values, got {arg.numel()}")
        if arg.dtype == torch.int32 and arg.device.type == "cpu":
            return arg
        return arg.to(device="cpu", dtype=torch.int32)
    if isinstance(arg, (Sequence, np.ndarray)) and not isinstance(arg, str):
        out = torch.tensor([int(v) for v in arg], dtype=torch.int32)
        if out.numel() != dimension:
            raise SparseInputError(f"expected {dimension} values, got {out.numel()}")
        return out
    if _is_scalar(arg) and not isinstance(arg, str):
        return torch.full((dimension,), int(arg), dtype=torch.int32)
    raise SparseInputError(f"input must be a scalar or a sequence, got {type(arg).__name__}")
