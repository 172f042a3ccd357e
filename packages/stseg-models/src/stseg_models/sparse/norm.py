"""Normalisation layers: MinkowskiBatchNorm (parameters under ``.bn``), sync and instance norm."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

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


class MinkowskiInstanceNorm(nn.Module):
    """Per-scene, per-channel normalisation: ``(x - mean_b) / sqrt(var_b + eps) * weight + bias``.

    Statistics are taken over the rows of each batch index (biased variance); ``weight`` and
    ``bias`` are [1, C] as in MinkowskiEngine.
    """

    def __init__(self, num_features: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, num_features))
        self.bias = nn.Parameter(torch.zeros(1, num_features))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()

    def forward(self, input: Any) -> Any:
        require_sparse_like(input, type(self).__name__)
        check_channels(input.F.shape[1], self.num_features, type(self).__name__)
        rows, ids = batch_index(input)
        feats = input.F
        count = torch.bincount(rows, minlength=ids.numel()).to(feats.dtype).unsqueeze(1)
        mean = feats.new_zeros((ids.numel(), feats.shape[1])).index_add(0, rows, feats) / count
        centered = feats - mean[rows]
        var = feats.new_zeros(mean.shape).index_add(0, rows, centered * centered) / count
        out = centered * torch.rsqrt(var + self.eps)[rows]
        return rewrap(input, out * self.weight + self.bias)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"
