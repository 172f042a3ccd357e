"""The segmentation loss of a batch and the label guard that runs before it (RELIABILITY C2, C3)."""

from __future__ import annotations

import numpy as np
import torch

from stseg_train.config import TrainConfig
from stseg_train.errors import TrainInputError


def class_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """float32 [C] cross-entropy weights frequency^-power for label counts [C], scaled so the
    weights of the classes present average 1; classes with no label get weight 1."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    weights = np.ones(len(counts))
    if present.any():
        freq = counts[present] / counts[present].sum()
        w = freq ** (-power)
        weights[present] = w / w.mean()
    return weights.astype(np.float32)


def batch_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int, int]:
    """Mean cross-entropy over non-ignored voxels (class-weighted when `weights` [C] is given,
    normalised by the weights of the valid voxels as torch does), plus (valid, correct) counts.

    A batch with every voxel ignored gives a zero loss with zero gradient (never 0/0 = NaN).
    """
    valid = labels != config.ignore_label
    n_valid = int(valid.sum())
    if n_valid == 0:
        return logits.sum() * 0.0, 0, 0
    loss = torch.nn.functional.cross_entropy(
        logits.float(), labels, weight=weights, ignore_index=config.ignore_label
    )
    correct = int((logits.argmax(1)[valid] == labels[valid]).sum())
    return loss, n_valid, correct


def check_labels(labels: torch.Tensor, config: TrainConfig, names: list[str]) -> torch.Tensor:
    """Map -1 to the ignore label and refuse labels outside [0, C) on the CPU, before any loss."""
    labels = torch.where(labels == -1, torch.full_like(labels, config.ignore_label), labels)
    bad = (labels < 0) | ((labels >= config.num_classes) & (labels != config.ignore_label))
    if bool(bad.any()):
        value = int(labels[bad][0])
        raise TrainInputError(
            f"label {value} outside [0, {config.num_classes}) and not the ignore label "
            f"{config.ignore_label} in batch of {', '.join(names)}"
        )
    return labels
