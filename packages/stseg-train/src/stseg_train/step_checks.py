"""What the trainer checks about one step: finite gradients, a batch norm fed a single voxel."""

from __future__ import annotations

import torch

from stseg_train.errors import TrainInputError


def is_single_voxel_norm(error: ValueError) -> bool:
    """torch's batch norm refusing a single value per channel in training mode.

    In a sparse U-Net that happens when a batch's scenes shrink to one voxel at the network's
    coarsest level: scenes too small for the voxel size and the network's depth, not a bug to
    show as a traceback.
    """
    return "Expected more than 1 value per channel" in str(error)


def single_voxel_norm_error(names: list[str], iteration: int) -> TrainInputError:
    return TrainInputError(
        f"iteration {iteration}: batch {', '.join(map(str, names))}: a batch norm got a single "
        "voxel (the scenes shrink to one voxel at the network's coarsest level); use a smaller "
        "--voxel-size, a larger --batch-size or larger scenes"
    )


def grads_finite(params: list[torch.nn.Parameter]) -> bool:
    """No NaN or infinity in any gradient: one max-norm over all of them, one host read."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(grads, float("inf"))))
