"""The segmentation loss of a batch and the label guard that runs before it (RELIABILITY C2, C3)."""

from __future__ import annotations

import torch

from stseg_train.config import TrainConfig
from stseg_train.errors import TrainInputError


def batch_loss(
    logits: torch.Tensor, labels: torch.Tensor, config: TrainConfig
) -> tuple[torch.Tensor, int, int]:
    """Mean cross-entropy over non-ignored voxels, plus (valid, correct) counts.

    A batch with every voxel ignored gives a zero loss with zero gradient (never 0/0 = NaN).
    """
    valid = labels != config.ignore_label
    n_valid = int(valid.sum())
    if n_valid == 0:
        return logits.sum() * 0.0, 0, 0
    loss = torch.nn.functional.cross_entropy(
        logits.float(), labels, ignore_index=config.ignore_label
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
