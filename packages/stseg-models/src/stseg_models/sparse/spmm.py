"""Sparse (COO) matrix times dense matrix, as MinkowskiEngine 0.5.4's ``sparse_matrix_functions``.

``spmm(rows, cols, vals, size, mat)`` is ``S @ mat`` for the [size[0], size[1]] matrix S with
``S[rows[p], cols[p]] += vals[p]`` (duplicate pairs add up), on any device (one ``index_add``, no
``torch.sparse``). The average variant uses ``vals = 1 / (number of pairs in the row)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from stseg_models.sparse.errors import SparseInputError


def _check(
    rows: torch.Tensor, cols: torch.Tensor, size: Sequence[int], mat: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if rows.dim() != 1 or rows.shape != cols.shape:
        raise SparseInputError("rows and cols must be 1D tensors of one length")
    if len(size) != 2:
        raise SparseInputError(f"size must be (rows, cols), got {tuple(size)}")
    if mat.dim() != 2 or mat.shape[0] != int(size[1]):
        raise SparseInputError(f"mat must be [{int(size[1])}, C], got {tuple(mat.shape)}")
    rows, cols = rows.long().to(mat.device), cols.long().to(mat.device)
    if rows.numel():
        if int(rows.min()) < 0 or int(rows.max()) >= int(size[0]):
            raise SparseInputError(f"rows hold indices outside [0, {int(size[0])})")
        if int(cols.min()) < 0 or int(cols.max()) >= int(size[1]):
            raise SparseInputError(f"cols hold indices outside [0, {int(size[1])})")
    return rows, cols


def _product(
    rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, n_rows: int, mat: torch.Tensor
) -> torch.Tensor:
    out = mat.new_zeros((n_rows, mat.shape[1]))
    return out.index_add_(0, rows, mat.index_select(0, cols) * vals.unsqueeze(1))


def spmm(
    rows: torch.Tensor,
    cols: torch.Tensor,
    vals: torch.Tensor,
    size: Sequence[int] | torch.Size,
    mat: torch.Tensor,
    is_sorted: bool = False,
    cuda_spmm_alg: int = 1,
) -> torch.Tensor:
    """[size[0], C] = S @ mat; `is_sorted` and `cuda_spmm_alg` are accepted and ignored."""
    rows, cols = _check(rows, cols, size, mat)
    if vals.shape != rows.shape:
        raise SparseInputError("vals must have one value per (row, col) pair")
    if vals.dtype != mat.dtype:
        raise SparseInputError(f"vals ({vals.dtype}) and mat ({mat.dtype}) must share a dtype")
    return _product(rows, cols, vals.to(mat.device), int(size[0]), mat)


def spmm_average(
    rows: torch.Tensor, cols: torch.Tensor, size: Sequence[int] | torch.Size, mat: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(S @ mat with S[r, c] = 1 / pairs in row r, COO [2, P] int64, vals [P])."""
    rows, cols = _check(rows, cols, size, mat)
    counts = torch.bincount(rows, minlength=int(size[0]))
    vals = (1.0 / counts[rows]).to(mat.dtype)
    return _product(rows, cols, vals, int(size[0]), mat), torch.stack([rows, cols]), vals


class MinkowskiSPMMFunction(torch.autograd.Function):
    """apply(rows, cols, vals, size, mat, cuda_spmm_alg=1) -> S @ mat; gradient w.r.t. mat only."""

    @staticmethod
    def forward(
        ctx: Any,
        rows: torch.Tensor,
        cols: torch.Tensor,
        vals: torch.Tensor,
        size: Sequence[int] | torch.Size,
        mat: torch.Tensor,
        cuda_spmm_alg: int = 1,
    ) -> torch.Tensor:
        ctx.size = (int(size[0]), int(size[1]))
        ctx.save_for_backward(rows, cols, vals)
        return spmm(rows, cols, vals, size, mat)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        rows, cols, vals = ctx.saved_tensors
        grad_mat = spmm(cols, rows, vals, (ctx.size[1], ctx.size[0]), grad.contiguous())
        return None, None, None, None, grad_mat, None


class MinkowskiSPMMAverageFunction(torch.autograd.Function):
    """apply(rows, cols, size, mat, cuda_spmm_alg=1) -> row-averaging S @ mat; gradient w.r.t. mat."""

    @staticmethod
    def forward(
        ctx: Any,
        rows: torch.Tensor,
        cols: torch.Tensor,
        size: Sequence[int] | torch.Size,
        mat: torch.Tensor,
        cuda_spmm_alg: int = 1,
    ) -> torch.Tensor:
        out, coo, vals = spmm_average(rows, cols, size, mat)
        ctx.size = (int(size[0]), int(size[1]))
        ctx.save_for_backward(coo, vals)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        coo, vals = ctx.saved_tensors
        grad_mat = spmm(coo[1], coo[0], vals, (ctx.size[1], ctx.size[0]), grad.contiguous())
        return None, None, None, grad_mat, None
