"""A training run end to end: the run directory, launching processes, resume, the worker body.

`train(config, ...)` is what `stseg-train DATASET` calls. It opens the run directory
(`stseg_train.runfolder.open_run`: checked before anything is written, refusing to clobber an
existing run unless resuming (RELIABILITY H3), locked, the resolved config written once) and runs
`worker` in this process, in N spawned processes (`--gpus`/`--procs`), or as one of the processes
`torchrun` started (detected from its environment). `components` names a module-level function
`(config, ctx) -> Components` so spawned processes can import it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stseg_train.checkpoint import CheckpointManager
from stseg_train.config import TrainConfig, identity_hash
from stseg_train.distributed import DistContext, check_gpus, context_from_env, launch
from stseg_train.errors import TrainInputError
from stseg_train.rng import seed_everything
from stseg_train.runfolder import CONFIG_NAME, load_run_config, open_run, prepare_run_dir
from stseg_train.state import Components, StepHook, TrainState
from stseg_train.trainer import Trainer

log = logging.getLogger(__name__)
ComponentsFactory = Callable[[TrainConfig, DistContext], Components]
# re-exported: the run folder's rules live in stseg_train.runfolder
__all__ = ["CONFIG_NAME", "load_run_config", "open_run", "prepare_run_dir", "train", "worker"]


def worker(
    config: TrainConfig,
    components: ComponentsFactory,
    resume: bool,
    restart_from_scratch: bool = False,
    on_step: StepHook | None = None,
    until: int | None = None,
    trainer_class: type[Trainer] = Trainer,
) -> TrainState:
    """The body of every training process (single, spawned, or torchrun-launched).

    `trainer_class` lets another task (SSEN's embedding loss) reuse this process body with its own
    `Trainer` subclass.
    """
    ctx = context_from_env(config.dist_timeout_s, prefer_cuda=_wants_cuda(config))
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    elif ctx.distributed and ctx.device == "cpu":
        # Share the cores between the local processes instead of oversubscribing them.
        local = int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    seed_everything(config.seed)
    parts = components(config, ctx)
    if config.sync_bn and ctx.distributed:
        if ctx.device == "cpu":
            raise TrainInputError("sync_bn needs CUDA (torch's SyncBatchNorm has no CPU kernel)")
        parts.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(parts.model)
    trainer = trainer_class(config, ctx, parts, config.out, on_step=on_step)
    if resume:
        manager = CheckpointManager(Path(config.out) / "checkpoints", config.keep_last)
        found = None if restart_from_scratch else manager.load_latest_valid(log.warning)
        if found is not None:
            payload, path = found
            if payload.get("config_hash") != identity_hash(config):
                raise TrainInputError(f"{path}: checkpoint belongs to a different config")
            trainer.restore(payload)
            if ctx.is_main:
                log.info("resumed from %s at iteration %d", path, trainer.state.iteration)
        elif ctx.is_main:
            log.info("--resume %s: no checkpoint written yet; starting at iteration 0", config.out)
    return trainer.fit(until)


def _wants_cuda(config: TrainConfig) -> bool:
    return config.runtime.device != "cpu" and torch.cuda.is_available()


def train(
    config: TrainConfig,
    components: ComponentsFactory,
    *,
    resume: bool = False,
    restart_from_scratch: bool = False,
    gpus: int = 0,
    procs: int = 0,
    checkpoint_bytes: int | None = None,
) -> TrainState | None:
    """Run a whole training job in its locked run folder (`stseg_train.runfolder.open_run`;
    `checkpoint_bytes` must fit there). Returns the final state (None when workers were spawned)."""
    if gpus and procs:
        raise TrainInputError("pass either --gpus or --procs, not both")
    if gpus:
        check_gpus(gpus)
    with open_run(config, resume=resume, checkpoint_bytes=checkpoint_bytes):
        return launch_training(
            config,
            components,
            resume=resume,
            restart_from_scratch=restart_from_scratch,
            gpus=gpus,
            procs=procs,
        )


def launch_training(
    config: TrainConfig,
    components: ComponentsFactory,
    *,
    resume: bool = False,
    restart_from_scratch: bool = False,
    gpus: int = 0,
    procs: int = 0,
) -> TrainState | None:
    """Run `worker` here or in spawned processes, in an already prepared run directory."""
    nprocs = gpus or procs
    if nprocs > 1 and "WORLD_SIZE" not in os.environ:
        if procs and config.runtime.device == "auto":  # --procs: CPU processes (gloo)
            runtime = dataclasses.replace(config.runtime, device="cpu")
            config = dataclasses.replace(config, runtime=runtime)
        launch(worker, (config, components, resume, restart_from_scratch), nprocs)
        return None
    return worker(config, components, resume, restart_from_scratch)


def run_summary(state: TrainState | None, run: Path) -> dict[str, Any]:
    """A small JSON-able summary of a finished run."""
    out: dict[str, Any] = {"run": str(run)}
    if state is not None:
        out.update(
            iteration=state.iteration,
            best_miou=state.best_miou,
            nonfinite_skips=state.nonfinite_skips,
            oom_skips=state.oom_skips,
        )
    return out
