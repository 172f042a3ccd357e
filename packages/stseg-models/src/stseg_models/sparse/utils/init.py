"""Weight initialisation for MinkowskiEngine kernels: MinkowskiEngine 0.5.4's ``utils.init``.

A convolution kernel is stored ``[K, in, out]`` (K = kernel volume), not PyTorch's
``[out, in, k...]``, so `torch.nn.init.kaiming_normal_` would compute the wrong fans. Fans here:

* 2D ``[a, b]`` (a linear weight, or a K = 1 kernel): fan_in = b, fan_out = a (PyTorch's linear
  convention, kept from MinkowskiEngine);
* 3D and more ``[K, in, out, ...]``: fan_in = in * K, fan_out = out * K.
"""

from __future__ import annotations

import math

import torch

from stseg_models.sparse.errors import SparseInputError


def kernel_fans(tensor: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a MinkowskiEngine weight (see the module docstring)."""
    if tensor.dim() < 2:
        raise SparseInputError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )
    if tensor.dim() == 2:
        return int(tensor.size(1)), int(tensor.size(0))
    volume = int(tensor.size(0))
    return int(tensor.size(1)) * volume, int(tensor.size(2)) * volume


def kaiming_normal_(
    tensor: torch.Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> torch.Tensor:
    """Fill `tensor` in place from N(0, gain / sqrt(fan)) and return it (He et al. 2015).

    ``gain = torch.nn.init.calculate_gain(nonlinearity, a)``; ``mode`` is 'fan_in' or 'fan_out'
    (any case). Draws from PyTorch's global generator, exactly one ``normal_`` call, so a seeded run
    gives the same weights as MinkowskiEngine's function.
    """
    chosen = mode.lower()
    if chosen not in ("fan_in", "fan_out"):
        raise SparseInputError(
            f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']"
        )
    fan_in, fan_out = kernel_fans(tensor)
    fan = fan_in if chosen == "fan_in" else fan_out
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)  # type: ignore[arg-type]
    with torch.no_grad():
        return tensor.normal_(0, std)
