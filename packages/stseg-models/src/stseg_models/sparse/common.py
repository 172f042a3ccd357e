"""MinkowskiEngine 0.5.4's ``MinkowskiCommon`` helpers: argument conversion and the layer base class.

`convert_to_int_list` / `convert_to_int_tensor` (and `prep_args`, all four at once) expand a scalar to one value per spatial axis or
check a per-axis sequence, as MinkowskiEngine's layers do with ``kernel_size``, ``stride`` and
``tensor_stride``. `MinkowskiModuleBase` is the (empty) `torch.nn.Module` subclass that
MinkowskiEngine derives its layers from, so ``class MyLayer(ME.MinkowskiModuleBase)`` works.
`get_postfix` names a tensor's device as MinkowskiEngine's backend functions do ("CPU" / "GPU").
MinkowskiEngine's ``get_minkowski_function`` (a lookup of its C++ kernels) has no native
counterpart.
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


def prep_args(
    tensor_stride: Any,
    stride: Any,
    kernel_size: Any,
    dilation: Any,
    region_type: Any,
    D: int = -1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``(tensor_stride, stride, kernel_size, dilation)`` as int32 tensors [D] and ``int(region_type)``."""
    if not isinstance(D, int) or D < 1:
        raise SparseInputError(f"dimension must be a positive integer, {D}")
    kernel = convert_to_int_tensor(kernel_size, D)
    if bool((kernel <= 0).any()):
        raise SparseInputError(f"kernel_size must be a positive integer, provided {kernel_size}")
    return (
        convert_to_int_tensor(tensor_stride, D),
        convert_to_int_tensor(stride, D),
        kernel,
        convert_to_int_tensor(dilation, D),
        int(region_type),
    )


def get_postfix(tensor: torch.Tensor) -> str:
    """ "GPU" for a CUDA tensor, else "CPU" (MinkowskiEngine's backend-function suffix)."""
    return "GPU" if tensor.is_cuda else "CPU"
