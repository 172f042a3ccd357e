"""SSEN's discriminative metric loss on per-voxel instance embeddings (a pure function).

For one scene with instances k = 1..K (n_k voxels each, embeddings e_i, means mu_k):

    pull_k = mean_{i in k} [ ||e_i - mu_k|| - delta_pull ]_+^2
    pull   = sum_k w_k pull_k,           w_k = n_k^p / sum_j n_j^p         (p = 1: every voxel counts once)
    push   = sum_{k != j} [ 2 delta_push - ||mu_k - mu_j|| ]_+^2 / (2 K (K - 1))   (ordered pairs; 0 if K < 2)
    reg    = mean_k ||mu_k||
    loss   = w_pull pull + w_push push + w_reg reg

with SSEN's constants as defaults (delta_pull 0.1, delta_push 0.5 so the push hinge is at 1.0,
weights 1, 10, 0). Voxels whose instance id is <= 0 (background, unannotated) take no part. A batch
is a set of independent scenes: the loss is computed per scene and averaged over the scenes that
have at least one instance, because pushing apart the means of different scenes means nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssen_instance.errors import InstanceInputError

# sqrt'(0) is infinite; the floor keeps gradients finite when a voxel sits exactly on its mean
# (a one-voxel instance) without changing any distance that matters (1e-6 vs delta_pull 0.1).
_EPS = 1e-12


@dataclass(frozen=True)
class DiscriminativeLossConfig:
    """Constants of the loss (SSEN defaults)."""

    delta_pull: float = 0.1
    delta_push: float = 0.5
    weight_pull: float = 1.0
    weight_push: float = 10.0
    weight_reg: float = 0.0
    count_power: float = 1.0


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.clamp((x * x).sum(dim=-1), min=_EPS))


def _scene_terms(
    emb: torch.Tensor, inst: torch.Tensor, cfg: DiscriminativeLossConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    keep = inst > 0
    if not bool(keep.any()):
        return None
    emb, inst = emb[keep], inst[keep]
    _, index, counts = torch.unique(inst, return_inverse=True, return_counts=True)
    k = counts.numel()
    sums = torch.zeros(k, emb.shape[1], dtype=emb.dtype, device=emb.device)
    sums.index_add_(0, index, emb)
    means = sums / counts.unsqueeze(1).to(emb.dtype)

    hinge = torch.clamp(_norm(emb - means[index]) - cfg.delta_pull, min=0.0) ** 2
    per_instance = torch.zeros(k, dtype=emb.dtype, device=emb.device).index_add_(0, index, hinge)
    per_instance = per_instance / counts.to(emb.dtype)
    weights = counts.to(emb.dtype) ** cfg.count_power
    pull = (weights * per_instance).sum() / weights.sum()

    if k >= 2:
        diff = means.unsqueeze(0) - means.unsqueeze(1)  # [K, K, D]
        off_diagonal = ~torch.eye(k, dtype=torch.bool, device=emb.device)
        dist = _norm(diff[off_diagonal])
        push = (torch.clamp(2.0 * cfg.delta_push - dist, min=0.0) ** 2).sum() / (2 * k * (k - 1))
    else:
        push = emb.sum() * 0.0
    reg = _norm(means).mean()
    return pull, push, reg


def discriminative_loss(
    embeddings: torch.Tensor,
    instances: torch.Tensor,
    batch: torch.Tensor | None = None,
    config: DiscriminativeLossConfig | None = None,
    *,
    check_finite: bool = True,
) -> dict[str, torch.Tensor]:
    """SSEN's discriminative loss.

    embeddings: float [N, D] per-voxel embeddings.
    instances:  int [N] instance ids; <= 0 means "no instance" (ignored).
    batch:      int [N] scene index of each voxel (None: one scene).
    Returns a dict of scalar tensors `loss`, `pull`, `push`, `reg` (already averaged over the
    scenes with at least one instance; all 0, still attached to the graph, when there is none).
    `check_finite=False` lets non-finite embeddings through to a non-finite loss (the trainer's
    lockstep non-finite handling then takes over) instead of raising.
    """
    cfg = config or DiscriminativeLossConfig()
    if embeddings.ndim != 2:
        raise InstanceInputError(f"embeddings must be [N, D], got shape {tuple(embeddings.shape)}")
    n = embeddings.shape[0]
    if instances.shape != (n,):
        raise InstanceInputError(
            f"instances must be [N] = [{n}] like the embeddings, got {tuple(instances.shape)}"
        )
    if batch is not None and batch.shape != (n,):
        raise InstanceInputError(f"batch must be [N] = [{n}], got {tuple(batch.shape)}")
    if check_finite and not bool(torch.isfinite(embeddings).all()):
        bad = int((~torch.isfinite(embeddings)).any(dim=1).sum())
        raise InstanceInputError(f"embeddings contain NaN or inf in {bad} of {n} rows")

    zero = embeddings.sum() * 0.0
    scenes = [slice(None)] if batch is None else [batch == b for b in torch.unique(batch)]
    terms = [t for s in scenes if (t := _scene_terms(embeddings[s], instances[s], cfg))]
    if not terms:
        return {"loss": zero, "pull": zero, "push": zero, "reg": zero}
    pull = torch.stack([t[0] for t in terms]).mean()
    push = torch.stack([t[1] for t in terms]).mean()
    reg = torch.stack([t[2] for t in terms]).mean()
    loss = cfg.weight_pull * pull + cfg.weight_push * push + cfg.weight_reg * reg
    return {"loss": loss, "pull": pull, "push": push, "reg": reg}


def background_loss(logits: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of background logits [N] against soft targets `share` [N] in [0, 1]
    (a voxel's share of background points; NaN: no target, left out). 0, attached to the graph,
    when no voxel has a target."""
    if logits.shape != share.shape or logits.ndim != 1:
        raise InstanceInputError(
            f"background logits {tuple(logits.shape)} and targets {tuple(share.shape)} must be "
            "the same [N]"
        )
    known = ~torch.isnan(share)
    if not bool(known.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[known], share[known].to(logits.dtype))
