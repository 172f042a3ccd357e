"""The data the training loop works with: its components, its state, and the step hook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from stseg_train.batches import Position


@dataclass
class Components:
    """What the loop needs besides the config: a model, how to run it, and the data."""

    model: torch.nn.Module
    model_name: str
    model_args: dict[str, Any]
    forward: Callable[[torch.nn.Module, dict[str, Any]], torch.Tensor]  # batch -> logits [M, C]
    train_set: Any  # torch Dataset indexed by (index, seed) tuples
    collate: Callable[[list[Any]], dict[str, Any]]
    evaluate: Callable[[torch.nn.Module], dict[str, Any]] | None = None  # -> metrics.summarize()
    export_meta: dict[str, Any] = field(default_factory=dict)  # stseg-models checkpoint keys
    class_weights: torch.Tensor | None = None  # float32 [C] cross-entropy weights, or None


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
