"""`SparseTensor.dense()` and `.sparse()`: MinkowskiEngine 0.5.4's conversions to torch tensors.

Rules (MinkowskiEngine's, including its quirks, since user code depends on them):

* ``dense()`` with no ``min_coordinate`` indexes the grid by the coordinates themselves (it does not
  shift by the minimum), requires every coordinate >= 0, and returns the per-axis minimum
  ``[1, D]`` as "min_coordinate"; with ``min_coordinate`` [D] the grid starts there; with the int
  ``0`` it starts at the origin. ``contract_stride`` divides by the tensor stride. The default
  shape is ``[max batch + 1, C, *(max coordinate + 1)]``; a given shape's channel entry is replaced
  by the feature width. Returns ``(dense [B, C, *spatial], min_coordinate, tensor_stride IntTensor)``.
* ``sparse()`` returns a hybrid torch sparse COO tensor ``[B, *spatial, C]`` (indices shifted by
  the minimum, which defaults to the per-axis minimum), the minimum and the tensor stride.
"""

from __future__ import annotations

from typing import Any

import torch

from stseg_models.sparse.errors import SparseInputError


def _stride(st: Any) -> torch.Tensor:
    # origin sets (global pooling outputs) have stride 0: treat as 1 so nothing divides by zero
    return torch.tensor(st.tensor_stride, dtype=torch.int32, device=st.device).clamp(min=1)


def _check_divisible(value: torch.Tensor, stride: torch.Tensor, what: str) -> None:
    if bool((value.to(stride.device) % stride != 0).any()):
        raise SparseInputError(
            f"{what} {value.flatten().tolist()} must be divisible by the tensor stride {stride.tolist()}"
        )


def to_dense(
    st: Any,
    shape: torch.Size | None = None,
    min_coordinate: torch.Tensor | int | None = None,
    contract_stride: bool = True,
) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """Dense [B, C, *spatial] tensor of a SparseTensor, the min coordinate used, the tensor stride."""
    d = st.D
    coords = st.C.long()
    batch, spatial = coords[:, 0], coords[:, 1:]
    stride = _stride(st)
    if shape is not None:
        if len(shape) != d + 2:
            raise SparseInputError(f"dense(): shape must have 2 + D = {d + 2} entries, got {shape}")
        if shape[1] != st.F.shape[1]:
            shape = torch.Size([shape[0], st.F.shape[1], *shape[2:]])
    min_out: Any = min_coordinate
    if min_coordinate is None:
        lowest = (
            spatial.amin(dim=0, keepdim=True).int()
            if len(st)
            else torch.zeros((1, d), dtype=torch.int32, device=st.device)
        )
        if bool((lowest < 0).any()):
            raise SparseInputError(
                f"dense(): coordinates have negative values (min {lowest.tolist()}); "
                "pass min_coordinate"
            )
        rel, min_out = spatial, lowest
    elif isinstance(min_coordinate, int) and min_coordinate == 0:
        rel = spatial
    else:
        given = torch.as_tensor(min_coordinate, device=st.device)
        if given.numel() != d:
            raise SparseInputError(f"dense(): min_coordinate must have {d} entries")
        rel = spatial - given.long().reshape(1, d)
        _check_divisible(given, stride, "dense(): min_coordinate")
        min_out = given.reshape(1, d)
    if bool((rel < 0).any()):
        raise SparseInputError("dense(): some coordinates are below min_coordinate")
    if contract_stride:
        rel = torch.div(rel, stride.long(), rounding_mode="floor")
    if shape is None:
        size = (rel.amax(dim=0) + 1).tolist() if len(st) else [1] * d
        nb = int(batch.max()) + 1 if len(st) else 1
        shape = torch.Size([nb, st.F.shape[1], *size])
    too_big = [i for i in range(d) if len(st) and int(rel[:, i].max()) >= shape[i + 2]]
    if too_big or (len(st) and int(batch.max()) >= shape[0]):
        raise SparseInputError(f"dense(): shape {tuple(shape)} does not contain every coordinate")
    out = st.F.new_zeros(tuple(shape))
    # index_put on a channels-last view, then back: differentiable, one scatter
    last = out.permute(0, *range(2, d + 2), 1).index_put((batch, *rel.t()), st.F)
    dense = last.permute(0, d + 1, *range(1, d + 1)).contiguous()
    return dense, min_out, torch.IntTensor(list(st.tensor_stride))


def to_torch_sparse(
    st: Any,
    min_coords: torch.Tensor | None = None,
    max_coords: torch.Tensor | None = None,
    contract_coords: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hybrid torch sparse COO tensor [B, *spatial, C], its min coordinate [1, D], the tensor stride."""
    d = st.D
    coords = st.C.long()
    batch, spatial = coords[:, :1], coords[:, 1:]
    stride = _stride(st).long()
    if min_coords is None:
        min_c = spatial.amin(dim=0, keepdim=True)
    else:
        min_c = torch.as_tensor(min_coords, device=st.device).long().reshape(1, d)
    _check_divisible(min_c, stride, "sparse(): min_coords")
    rel = spatial - min_c
    max_c = None
    if max_coords is not None:
        max_c = torch.as_tensor(max_coords, device=st.device).long().reshape(1, d)
        _check_divisible(max_c, stride, "sparse(): max_coords")
    if contract_coords:
        rel = torch.div(rel, stride, rounding_mode="floor")
        min_c = torch.div(min_c, stride, rounding_mode="floor")
        if max_c is not None:
            max_c = torch.div(max_c, stride, rounding_mode="floor")
    indices = torch.cat([batch, rel], dim=1).t()
    if max_c is None:
        out = torch.sparse_coo_tensor(indices, st.F)
    else:
        size = (max_c - min_c + 1).flatten().tolist()
        nb = int(batch.max()) + 1 if len(st) else 1
        out = torch.sparse_coo_tensor(indices, st.F, (nb, *size, st.F.shape[1]))
    return out, min_c.int(), torch.IntTensor(list(st.tensor_stride))
