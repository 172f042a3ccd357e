"""A tiny plain-torch model and dataset with the trainer's interfaces, for tests and benchmarks.

Scenes are `points` random points with 3 features; the label of a point is the argmax of a fixed
linear map of its features (learnable), with ~5 % ignored. A sample's augmentation (feature jitter)
comes from its own seed, as in the real pipeline. Module level so spawned workers can import it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from stseg_train.config import TrainConfig
from stseg_train.distributed import DistContext
from stseg_train.metrics import confusion_matrix, summarize
from stseg_train.state import Components


class ToyScenes(Dataset):
    """`n` scenes of `points` points; `dataset[(index, seed)]` -> sample dict."""

    def __init__(
        self,
        n: int = 8,
        points: int = 64,
        num_classes: int = 4,
        seed: int = 0,
        ignore_fraction: float = 0.05,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.features = rng.normal(size=(n, points, 3)).astype(np.float32)
        self.coords = rng.integers(0, 32, size=(n, points, 3)).astype(np.int32)
        weights = rng.normal(size=(3, num_classes))
        self.labels = (self.features @ weights).argmax(-1).astype(np.int64)
        self.labels[rng.random(self.labels.shape) < ignore_fraction] = 255
        self.names = [f"toy{i:03d}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        rng = np.random.default_rng(seed)
        features = self.features[index] + rng.normal(scale=0.05, size=self.features[index].shape)
        return {
            "coords": self.coords[index],
            "features": features.astype(np.float32),
            "labels": self.labels[index],
            "name": self.names[index],
        }


def toy_collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate samples; coords get the batch index as first column ([M, 4] int32)."""
    coords = [
        np.concatenate([np.full((len(s["coords"]), 1), b), s["coords"]], 1)
        for b, s in enumerate(samples)
    ]
    return {
        "coords": torch.from_numpy(np.concatenate(coords).astype(np.int32)),
        "features": torch.from_numpy(np.concatenate([s["features"] for s in samples])),
        "labels": torch.from_numpy(np.concatenate([s["labels"] for s in samples])),
        "names": [s["name"] for s in samples],
    }


def toy_model(num_classes: int = 4, hidden: int = 16, batch_norm: bool = True) -> torch.nn.Module:
    """Linear-BatchNorm-ReLU-Linear on per-point features."""
    return torch.nn.Sequential(
        torch.nn.Linear(3, hidden),
        torch.nn.BatchNorm1d(hidden) if batch_norm else torch.nn.Identity(),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, num_classes),
    )


def toy_forward(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    device = next(model.parameters()).device
    return model(batch["features"].to(device))


def toy_evaluate(model: torch.nn.Module, *, scenes: ToyScenes, num_classes: int) -> dict[str, Any]:
    """metrics.summarize() of the model on every toy scene (no jitter)."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for index in range(len(scenes)):
        logits = toy_forward(model, {"features": torch.from_numpy(scenes.features[index])})
        pred = logits.argmax(1).cpu().numpy()
        confusion += confusion_matrix(pred, scenes.labels[index], num_classes)
    return summarize(confusion)


def toy_components(config: TrainConfig, ctx: DistContext) -> Components:
    """Components of a toy run, sized by the config's `toy` section (`ToyOptions`)."""
    torch.manual_seed(config.seed)
    scenes = ToyScenes(
        n=config.toy.scenes,
        points=config.toy.points,
        num_classes=config.num_classes,
        ignore_fraction=config.toy.ignore,
    )
    return Components(
        model=toy_model(config.num_classes, batch_norm=config.toy.bn),
        model_name="toy-mlp",
        model_args={"num_classes": config.num_classes},
        forward=toy_forward,
        train_set=scenes,
        collate=toy_collate,
        # Like the real components: only rank 0 holds a validation set.
        evaluate=partial(toy_evaluate, scenes=scenes, num_classes=config.num_classes)
        if ctx.is_main
        else None,
    )
