"""Normalisation layers: MinkowskiBatchNorm (parameters under ``.bn``), sync, instance and stable
instance norm, and MinkowskiInstanceNormFunction (instance norm with its own backward)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stseg_models.sparse.common import MinkowskiModuleBase
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.validation import check_channels
from stseg_models.sparse.wrap import batch_index, require_sparse_like, rewrap


class MinkowskiBatchNorm(nn.Module):
    """``nn.BatchNorm1d`` over the feature rows; state dict names ``bn.weight``, ``bn.running_mean`` ..."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.bn: nn.BatchNorm1d | nn.SyncBatchNorm = nn.BatchNorm1d(
            num_features,
            eps=eps,
            momentum=momentum,
            affine=affine,
            track_running_stats=track_running_stats,
        )

    def forward(self, input: Any) -> Any:
        require_sparse_like(input, type(self).__name__)
        check_channels(input.F.shape[1], self.bn.num_features, type(self).__name__)
        return rewrap(input, self.bn(input.F))

    def __repr__(self) -> str:
        bn = self.bn
        return f"{type(self).__name__}({bn.num_features}, eps={bn.eps}, momentum={bn.momentum}, affine={bn.affine})"


class MinkowskiSyncBatchNorm(MinkowskiBatchNorm):
    """Batch norm synchronised across processes (``nn.SyncBatchNorm`` under ``.bn``)."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
    ) -> None:
        super().__init__(
            num_features, eps, 0.1 if momentum is None else momentum, affine, track_running_stats
        )
        self.bn = nn.SyncBatchNorm(
            num_features, eps, momentum, affine, track_running_stats, process_group
        )

    @classmethod
    def convert_sync_batchnorm(cls, module: nn.Module, process_group: Any = None) -> nn.Module:
        """Replace every MinkowskiBatchNorm in `module` by a synchronised copy (same state)."""
        if isinstance(module, MinkowskiBatchNorm) and not isinstance(module, cls):
            bn = module.bn
            out = cls(
                bn.num_features,
                bn.eps,
                bn.momentum,
                bn.affine,
                bn.track_running_stats,
                process_group,
            )
            out.bn.load_state_dict(bn.state_dict())
            return out
        for name, child in module.named_children():
            module.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return module


class _InstanceNormBase(MinkowskiModuleBase):
    """Parameters ``weight`` [1, C] = 1 and ``bias`` [1, C] = 0, and the per-scene moments."""

    def __init__(self, num_features: int, eps: float) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, num_features))
        self.bias = nn.Parameter(torch.zeros(1, num_features))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()

    def _moments(self, x: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(features minus their scene's mean [N, C], per-scene biased variance [B, C],
        row -> scene [N]) of an input checked to have ``num_features`` channels."""
        name = type(self).__name__
        require_sparse_like(x, name)
        check_channels(x.F.shape[1], self.num_features, name)
        rows, ids = batch_index(x)
        feats = x.F
        count = torch.bincount(rows, minlength=ids.numel()).to(feats.dtype).unsqueeze(1)
        centered = feats - _scene_mean(feats, rows, count)[rows]
        return centered, _scene_mean(centered * centered, rows, count), rows


class MinkowskiInstanceNorm(_InstanceNormBase):
    """Per-scene, per-channel normalisation: ``(x - mean_b) / sqrt(var_b + eps) * weight + bias``.

    Statistics are taken over the rows of each batch index (biased variance); ``weight`` and
    ``bias`` are [1, C] as in MinkowskiEngine.
    """

    def __init__(self, num_features: int, eps: float = 1e-8) -> None:
        super().__init__(num_features, eps)

    def forward(self, input: Any) -> Any:
        centered, var, rows = self._moments(input)
        out = centered * torch.rsqrt(var + self.eps)[rows]
        return rewrap(input, out * self.weight + self.bias)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def _scene_rows(manager: Any, key: Any) -> tuple[torch.Tensor, int]:
    """(row -> position of its batch index among the set's sorted batch indices [N], count B)."""
    batch = manager.get_coordinates(key)[:, 0].long()
    ids, rows = torch.unique(batch, return_inverse=True)
    return rows, ids.numel()


def _scene_mean(values: torch.Tensor, rows: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Per-scene mean [B, C] of values [N, C]."""
    return values.new_zeros((count.shape[0], values.shape[1])).index_add_(0, rows, values) / count


class MinkowskiInstanceNormFunction(torch.autograd.Function):
    """apply(in_feat [N, C], in_coords_key, glob_coords_key=None, coords_manager, gpooling_mode)
    -> [N, C]: ``(x - mean_b) / sqrt(var_b + 1e-8)`` per scene (biased variance), without the
    affine part. Its own backward: ``(g - mean_b(g) - y * mean_b(g * y)) / sqrt(var_b + 1e-8)``."""

    @staticmethod
    def forward(
        ctx: Any,
        in_feat: torch.Tensor,
        in_coords_key: Any,
        glob_coords_key: Any = None,
        coords_manager: Any = None,
        gpooling_mode: Any = None,
    ) -> torch.Tensor:
        if coords_manager is None:
            raise SparseInputError("MinkowskiInstanceNormFunction needs the coordinate manager")
        rows, b = _scene_rows(coords_manager, in_coords_key)
        if in_feat.dim() != 2 or in_feat.shape[0] != rows.shape[0]:
            raise SparseInputError(
                f"in_feat must be [{rows.shape[0]}, C] for {in_coords_key}, got {tuple(in_feat.shape)}"
            )
        count = torch.bincount(rows, minlength=b).to(in_feat.dtype).unsqueeze(1)
        centered = in_feat - _scene_mean(in_feat, rows, count)[rows]
        inv_std = torch.rsqrt(_scene_mean(centered * centered, rows, count) + 1e-8)
        out = centered * inv_std[rows]
        ctx.save_for_backward(rows, count, inv_std, out)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        rows, count, inv_std, out = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        mean_g = _scene_mean(grad_out, rows, count)[rows]
        mean_gy = _scene_mean(grad_out * out, rows, count)[rows]
        grad = (grad_out - mean_g - out * mean_gy) * inv_std[rows]
        return grad, None, None, None, None


class MinkowskiStableInstanceNorm(_InstanceNormBase):
    """Instance norm computed in two passes: ``(x - mean_b) / sqrt(var_b + 1e-6) * weight + bias``.

    MinkowskiEngine 0.5.4's parameters (``weight``, ``bias`` [1, C]) and eps (1e-6, fixed);
    gradients through autograd. Accepts a SparseTensor (MinkowskiEngine's takes only those).
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, 1e-6)

    def forward(self, x: Any) -> Any:
        centered, var, rows = self._moments(x)
        out = centered * (1.0 / (var + self.eps).sqrt())[rows]
        return rewrap(x, out * self.weight + self.bias)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nchannels={self.num_features})"
