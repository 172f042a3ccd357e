"""`ssen-instance train`: the embedding network trained through stseg-train's trainer.

stseg-train's `Trainer` brings checkpoints (atomic, hashed, retained), `--resume`, distribution
(`--gpus N`, torchrun), lockstep skipping of non-finite / out-of-memory steps, gradient clipping,
schedules and logging. Its loss is cross-entropy, so `SsenTrainer` overrides the one method that
computes the loss (`_forward_backward`) with the discriminative loss; everything else is reused
unchanged, including the process body (`stseg_train.run.worker` with `trainer_class=SsenTrainer`).

SSEN's recipe: Adam at 1e-4, step schedule (x0.8 every 10k iterations), gradient-norm clip 0.5,
batch 8, 2 cm voxels, Mink16UNet34C with an 8-D embedding head initialised from the semantic
checkpoint minus its head.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ssen_instance.dataset import SsenDataset, collate_batch
from ssen_instance.errors import InstanceInputError
from ssen_instance.loss import DiscriminativeLossConfig, discriminative_loss
from ssen_instance.model import (
    BACKBONE,
    EMBEDDING_DIM,
    build_embedding_model,
    forward_sparse,
    init_from_semantic,
    save_instance_checkpoint,
)
from ssen_instance.scenes import list_scene_files
from stseg_train.config import TrainConfig, validate
from stseg_train.distributed import DistContext, check_gpus, launch
from stseg_train.faults import inject_fault
from stseg_train.run import prepare_run_dir
from stseg_train.run import worker as run_worker
from stseg_train.trainer import Components, Trainer, TrainState

log = logging.getLogger(__name__)
TASK = "ssen-instance"


class SsenTrainer(Trainer):
    """stseg-train's Trainer with the discriminative loss on instance ids (batch['labels'])."""

    def fit(self, until: int | None = None) -> TrainState:
        """Train as stseg-train does, then (rank 0) write the instance checkpoint that
        `ssen-instance eval` / `predict` read."""
        state = super().fit(until)
        if self.ctx.is_main and until is None:
            save_instance_checkpoint(
                Path(self.config.out) / "instance.pt",
                self.model,
                voxel_size=self.config.voxel_size,
                extra={
                    "loss": asdict(DiscriminativeLossConfig(**self.config.extra.get("loss", {})))
                },
            )
        return state

    def _forward_backward(self, batch: dict[str, Any]) -> tuple[float, int, int]:
        instances = batch["labels"].to(self.device)
        scene = batch["coords"][:, 0].to(self.device)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            embeddings = self.parts.forward(self.model, batch)
        cfg = DiscriminativeLossConfig(**self.config.extra.get("loss", {}))
        out = discriminative_loss(embeddings.float(), instances, scene, cfg, check_finite=False)
        loss: torch.Tensor = inject_fault("nan", self.ctx.rank, self.state.iteration, out["loss"])  # type: ignore[assignment]
        self.scaler.scale(loss / self.config.iter_size).backward()
        # "valid" = voxels with an instance; a batch without any is skipped as empty (no signal).
        return float(loss.detach()), int((instances > 0).sum()), 0


def _forward(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    device = next(model.parameters()).device
    return forward_sparse(model, batch["coords"].to(device), batch["features"].to(device))


def ssen_components(config: TrainConfig, ctx: DistContext) -> Components:
    """Model (initialised from the semantic checkpoint), data and forward of an SSEN run."""
    extra = config.extra
    model = build_embedding_model(config.model, config.num_classes, config.in_channels)
    weights = extra.get("semantic_weights")
    if weights:
        report = init_from_semantic(model, weights)
        if ctx.is_main:
            log.info("initialised from %s:\n%s", weights, report.table())
    files = [Path(f) for f in extra["train_files"]]
    return Components(
        model=model,
        model_name=config.model,
        model_args=dict(model.model_args),  # type: ignore[arg-type]
        forward=_forward,
        train_set=SsenDataset(
            files, train=True, voxel_size=config.voxel_size, augment=config.augment
        ),
        collate=collate_batch,
        evaluate=None,
    )


def worker(config: TrainConfig, resume: bool, restart_from_scratch: bool = False) -> TrainState:
    """One training process: stseg-train's process body with `SsenTrainer`."""
    return run_worker(
        config, ssen_components, resume, restart_from_scratch, trainer_class=SsenTrainer
    )


def ssen_config(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    semantic_weights: str | os.PathLike[str] | None = None,
    model: str = BACKBONE,
    embedding_dim: int = EMBEDDING_DIM,
    max_iter: int = 60000,
    batch_size: int = 8,
    lr: float = 1e-4,
    save_freq: int = 1000,
    seed: int = 42,
    **overrides: Any,
) -> TrainConfig:
    """The SSEN recipe as a stseg-train `TrainConfig` (scene files listed in `extra`)."""
    files = [str(f.resolve()) for f in list_scene_files(data)]
    config = TrainConfig(
        dataset="scannet",
        data=str(data),
        out=str(out),
        model=model,
        num_classes=embedding_dim,
        voxel_size=0.02,
        optimizer="adam",
        lr=lr,
        weight_decay=0.0,
        scheduler="step",
        step_size=10000,
        step_gamma=0.8,
        clip_grad_norm=0.5,
        batch_size=batch_size,
        max_iter=max_iter,
        save_freq=save_freq,
        val_freq=max_iter + 1,
        seed=seed,
        progress=False,
        tensorboard=False,
        extra={
            "task": TASK,
            "semantic_weights": str(semantic_weights) if semantic_weights else "",
            "train_files": files,
        },
    )
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise InstanceInputError(f"unknown training setting {key!r}")
        setattr(config, key, value)
    config.val_freq = max(config.val_freq, config.max_iter + 1)
    validate(config)
    return config


def train_instance(
    config: TrainConfig, *, gpus: int = 0, procs: int = 0, resume: bool = False
) -> TrainState | None:
    """Run SSEN training (in this process, or `gpus` / `procs` spawned processes)."""
    if gpus and procs:
        raise InstanceInputError("pass either --gpus or --procs, not both")
    if gpus:
        check_gpus(gpus)
    prepare_run_dir(config, resume=resume)
    nprocs = gpus or procs
    if nprocs > 1 and "WORLD_SIZE" not in os.environ:
        launch(worker, (config, resume), nprocs)
        return None
    return worker(config, resume)
