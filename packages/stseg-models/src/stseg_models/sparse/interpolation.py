"""N-linear interpolation of a SparseTensor at continuous points (`MinkowskiInterpolation`).

A sample ``(b, x_1..x_D)`` on a tensor of stride ``s`` lies in the cell whose lowest corner is
``floor(x / s) * s``; its ``2^D`` corners ``lb + s * bits`` that exist in the tensor contribute
with the n-linear weight ``prod_i (1 - |x_i - c_i| / s_i)``. As in MinkowskiEngine 0.5.4 the
weights are not renormalised when corners are missing (a sample far from every voxel gets zeros),
and `SparseTensor.features_at_coordinates` is this interpolation (on a voxel it returns the voxel).
Points below a voxel's cell (``x < lb``) cannot occur: ``lb = floor(x / s) * s``.

Pairs are listed corner-major (`corner_bits`), zero-weight pairs of present corners included, index
tensors int32, as MinkowskiEngine returns them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from stseg_models.sparse.common import MinkowskiModuleBase
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import lookup


def corner_bits(dim: int) -> list[list[int]]:
    """The 2^D cell corners in MinkowskiEngine's order: binary counting, last axis lowest bit."""
    return [[(j >> (dim - 1 - i)) & 1 for i in range(dim)] for j in range(2**dim)]


def interpolation_pairs(
    coords: torch.Tensor, tensor_stride: Sequence[int], samples: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tensor rows [P] int32, sample rows [P] int32, weights [P] in the samples' dtype).

    coords: int [N, 1+D] of the tensor; samples: float [M, 1+D] (batch index first). One pair per
    (sample, corner present in the tensor), zero weights included, corner-major: all samples'
    first corners, then all second corners, ... (MinkowskiEngine's order on one thread).
    """
    if samples.dim() != 2 or samples.shape[1] != coords.shape[1]:
        raise SparseInputError(
            f"interpolation points must be [M, {coords.shape[1]}], got {tuple(samples.shape)}"
        )
    dim = coords.shape[1] - 1
    device = samples.device
    dtype = samples.dtype if samples.is_floating_point() else torch.float64
    pts = samples.to(dtype)
    stride = torch.tensor([max(int(s), 1) for s in tensor_stride], dtype=dtype, device=device)
    lower = torch.floor(pts[:, 1:] / stride) * stride  # [M, D]
    bits = torch.tensor(corner_bits(dim), dtype=dtype, device=device)  # [2^D, D]
    corners = lower[None, :, :] + bits[:, None, :] * stride  # [2^D, M, D]
    weights = (1 - (pts[None, :, 1:] - corners).abs() / stride).prod(dim=2)
    batch = pts[None, :, :1].expand(bits.shape[0], -1, 1)
    query = torch.cat([batch, corners], dim=2).reshape(-1, dim + 1).round().long()
    rows = lookup(query, coords.long().to(device))
    keep = (rows >= 0).nonzero().squeeze(1)
    sample_rows = keep % pts.shape[0]
    return rows[keep].int(), sample_rows.int(), weights.reshape(-1)[keep]


class MinkowskiInterpolationFunction(torch.autograd.Function):
    """``apply(features [N, C], points [M, 1+D], key, manager)`` -> (out [M, C], in_map, out_map, w)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        input_features: torch.Tensor,
        tfield: torch.Tensor,
        in_coordinate_map_key: Any,
        coordinate_manager: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        in_map, out_map, weights = coordinate_manager.interpolation_map_weight(
            in_coordinate_map_key, tfield
        )
        weights = weights.to(input_features.dtype)
        out = input_features.new_zeros((tfield.shape[0], input_features.shape[1]))
        gathered = input_features.index_select(0, in_map.long()) * weights[:, None]
        out.index_add_(0, out_map.long(), gathered)
        ctx.save_for_backward(in_map, out_map, weights)
        ctx.num_in = input_features.shape[0]
        ctx.mark_non_differentiable(in_map, out_map, weights)
        return out, in_map, out_map, weights

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, *_unused: Any) -> tuple:
        in_map, out_map, weights = ctx.saved_tensors
        grad = grad_out.new_zeros((ctx.num_in, grad_out.shape[1]))
        grad.index_add_(
            0, in_map.long(), grad_out.index_select(0, out_map.long()) * weights[:, None]
        )
        return grad, None, None, None


class MinkowskiInterpolation(MinkowskiModuleBase):
    """Sample n-linearly interpolated features of a SparseTensor at points [M, 1+D].

    Returns the features [M, C]; with ``return_kernel_map`` also ``(in_map, out_map)``, with
    ``return_weights`` also the weights, in that order (MinkowskiEngine 0.5.4).
    """

    def __init__(self, return_kernel_map: bool = False, return_weights: bool = False) -> None:
        super().__init__()
        self.return_kernel_map = return_kernel_map
        self.return_weights = return_weights

    def forward(self, input: Any, tfield: torch.Tensor) -> Any:
        from stseg_models.sparse.tensor import SparseTensor

        if not isinstance(input, SparseTensor):
            raise SparseInputError(
                f"MinkowskiInterpolation expects a SparseTensor, got {type(input).__name__}"
            )
        if not isinstance(tfield, torch.Tensor):
            raise SparseInputError("MinkowskiInterpolation points must be a torch.Tensor [M, 1+D]")
        out, in_map, out_map, weights = MinkowskiInterpolationFunction.apply(
            input.F, tfield.to(input.device), input.coordinate_map_key, input.coordinate_manager
        )
        extra: list[Any] = []
        if self.return_kernel_map:
            extra.append((in_map, out_map))
        if self.return_weights:
            extra.append(weights)
        return (out, *extra) if extra else out

    def __repr__(self) -> str:
        return "MinkowskiInterpolation()"
