"""The data the training loop works with: its components, its state, and the step hook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from stseg_train.batches import Position


@dataclass
class StepLoss:
    """What a task's loss returns for one batch (`Components.loss`)."""

    loss: torch.Tensor  # scalar, differentiable; the trainer scales, accumulates and backprops it
    valid: int  # voxels with a target; 0 on every rank skips the step as empty (no signal)
    correct: int = 0  # voxels predicted right, for the logged accuracy (0 where meaningless)


# (outputs of `Components.forward`, the batch) -> StepLoss; runs under autocast with `amp`
LossFn = Callable[[torch.Tensor, dict[str, Any]], StepLoss]


@dataclass
class Components:
    """What the loop needs besides the config: a model, how to run it, and the data.

    The task hooks: `forward(model, batch)` returns the network's outputs; `model` may be a
    `DistributedDataParallel` wrapper, so call it for the forward pass and read attributes from
    `stseg_train.unwrap_model(model)`. `loss(outputs, batch)` (default: the config's weighted
    cross-entropy on `batch["labels"]`) returns a `StepLoss`. `on_finish(model)` runs on rank 0
    once the run reaches `max_iter`, after the final checkpoint (e.g. to export the network).
    """

    model: torch.nn.Module
    model_name: str
    model_args: dict[str, Any]
    forward: Callable[[torch.nn.Module, dict[str, Any]], torch.Tensor]  # batch -> outputs [M, C]
    train_set: Any  # torch Dataset indexed by (index, seed) tuples
    collate: Callable[[list[Any]], dict[str, Any]]
    evaluate: Callable[[torch.nn.Module], dict[str, Any]] | None = None  # -> metrics.summarize()
    export_meta: dict[str, Any] = field(default_factory=dict)  # stseg-models checkpoint keys
    class_weights: torch.Tensor | None = None  # float32 [C] cross-entropy weights, or None
    loss: LossFn | None = None  # None: cross-entropy (stseg_train.loss.batch_loss)
    on_finish: Callable[[torch.nn.Module], None] | None = None


@dataclass
class TrainState:
    iteration: int = 0
    position: Position = field(default_factory=Position)
    best_miou: float = -1.0
    nonfinite_skips: int = 0
    oom_skips: int = 0
    empty_skips: int = 0
    last_metrics: dict[str, Any] | None = None


StepHook = Callable[[int, float, list[str]], None]  # (iteration, global loss, sample names)
