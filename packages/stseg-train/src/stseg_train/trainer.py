"""The training loop: one optimizer step reads like prose, failure handling is in lockstep.

Per step, every rank: reads `iter_size` batches, runs forward and backward (an out-of-memory error
on CUDA is caught and flagged), checks the loss and gradients are finite, and all ranks agree on
the flags (one all-reduce). If every rank is fine the gradients are averaged, clipped and applied;
otherwise every rank skips the step together. Rank 0 logs, evaluates and writes checkpoints.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import math
import signal
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stseg_data.atomic import atomic_write
from stseg_data.errors import StsegRuntimeError
from stseg_models.precision import autocast_context, autocast_dtype
from stseg_train import __version__
from stseg_train.batches import BatchStream, Position
from stseg_train.checkpoint import CheckpointManager
from stseg_train.config import TrainConfig, identity_hash
from stseg_train.distributed import (
    DistContext,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    wrap_model,
)
from stseg_train.errors import NonFiniteError, TrainInputError, TrainRuntimeError
from stseg_train.faults import inject_fault
from stseg_train.heap import release_free_heap, retain_freed_memory
from stseg_train.loss import batch_loss, check_labels
from stseg_train.monitor import Monitor
from stseg_train.optim import build_optimizer, build_scheduler
from stseg_train.rng import capture_rng_state, restore_rng_state
from stseg_train.state import Components, StepHook, TrainState
from stseg_train.step_checks import grads_finite, is_single_voxel_norm, single_voxel_norm_error

log = logging.getLogger(__name__)
EXIT_PREEMPTED = 4


class Preempted(TrainRuntimeError):
    """SIGTERM arrived; a checkpoint of the current step was written. Relaunch to continue."""

    exit_code = EXIT_PREEMPTED


class Trainer:
    """Owns the model, optimizer, scheduler, scaler and the state of one process of a run."""

    def __init__(
        self,
        config: TrainConfig,
        ctx: DistContext,
        parts: Components,
        run_dir: str | Path,
        *,
        on_step: StepHook | None = None,
    ) -> None:
        self.config = config
        self.ctx = ctx
        self.parts = parts
        self.run_dir = Path(run_dir)
        self.on_step = on_step
        self.device = torch.device(ctx.device)
        self.model = parts.model.to(self.device)
        # what the forward runs: the model itself, or its DistributedDataParallel wrapper (which
        # copies rank 0's parameters and buffers to every rank as it is built)
        self.net = wrap_model(self.model, ctx)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.class_weights = (
            None if parts.class_weights is None else parts.class_weights.to(self.device)
        )
        self.optimizer = build_optimizer(config, self.params)
        self.scheduler = build_scheduler(config, self.optimizer)
        # `precision` bf16 / fp16: forward under autocast (the older `amp` switch: fp16 on CUDA)
        self.amp_dtype = autocast_dtype(config.precision)
        if self.amp_dtype is None and config.amp and self.device.type == "cuda":
            self.amp_dtype = torch.float16
        # fp16's narrow range needs loss scaling (and the scaler skips steps with inf gradients);
        # bf16 has float32's range and needs none
        self.use_amp = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        self.state = TrainState()
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", config.keep_last)
        self._stop_requested = False
        self._consecutive_nonfinite = 0
        self._oom_in_epoch: dict[int, int] = {}
        self.last_names: list[str] = []
        self.recent_losses: collections.deque[tuple[int, float]] = collections.deque(maxlen=1000)
        self.recent_times: collections.deque[float] = collections.deque(maxlen=1000)
        # glibc keeps freed activations resident in its heap: trim every N steps (0 = never), or
        # keep every freed page for reuse (`heap_mode=retain`: faster steps, RSS at the peak)
        problems = config.runtime.problems()  # also for configs built in code, never validated
        if problems:
            raise TrainInputError(f"config: {problems[0]}")
        self.heap_trim_every = config.runtime.heap_trim_every
        if config.runtime.heap_mode == "retain":
            retain_freed_memory()
            self.heap_trim_every = 0

    # ---- state --------------------------------------------------------------------------
    def restore(self, payload: dict[str, Any]) -> None:
        """Continue from a checkpoint (optimizer and scheduler built first, then loaded)."""
        saved_world = int(payload["world_size"])
        position = Position(int(payload["epoch"]), int(payload["batch_in_epoch"]))
        if saved_world != self.ctx.world_size:
            if position.batch != 0 and not self.config.runtime.allow_reshard:
                raise TrainInputError(
                    f"checkpoint at iteration {payload['iteration']} was written mid-epoch by "
                    f"{saved_world} process(es); resuming with {self.ctx.world_size} would reshuffle "
                    "the epoch (use the same world size, or --set runtime.allow_reshard=true)"
                )
            log.warning(
                "world size changed %d -> %d: the global batch changes",
                saved_world,
                self.ctx.world_size,
            )
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        trainer_state = payload.get("trainer", {})
        self.state = TrainState(
            iteration=int(payload["iteration"]),
            position=position,
            best_miou=float(trainer_state.get("best_miou", -1.0)),
            nonfinite_skips=int(trainer_state.get("nonfinite_skips", 0)),
            oom_skips=int(trainer_state.get("oom_skips", 0)),
            empty_skips=int(trainer_state.get("empty_skips", 0)),
        )
        self.state.last_metrics = payload.get("metrics") or None
        # The loss history is part of the final checkpoint: carry it over so that a resumed run's
        # checkpoints equal an uninterrupted run's (step times are measurements, not state).
        self.recent_losses.clear()
        self.recent_losses.extend(
            (int(i), float(loss)) for i, loss in trainer_state.get("recent_losses", [])
        )
        self.recent_times.clear()
        self.recent_times.extend(float(t) for t in trainer_state.get("recent_step_seconds", []))
        rngs = payload["rng"]
        if len(rngs) == self.ctx.world_size:
            restore_rng_state(rngs[self.ctx.rank])

    def _parameter_digest(self) -> str:
        flat = torch.cat([p.detach().reshape(-1).float().cpu() for p in self.model.parameters()])
        return hashlib.sha256(flat.numpy().tobytes()).hexdigest()[:16]

    def payload(self) -> dict[str, Any]:
        """Everything needed to continue exactly (call on every rank: gathers RNG states).

        Also checks that every rank holds the same parameters (they must, after averaged steps).
        """
        rngs = all_gather_objects(capture_rng_state(), self.ctx)
        digests = all_gather_objects(self._parameter_digest(), self.ctx)
        if len(set(digests)) != 1:
            raise TrainRuntimeError(
                f"iteration {self.state.iteration}: parameters differ across ranks ({digests})"
            )
        return {
            **self.parts.export_meta,
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "model_name": self.parts.model_name,
            "model_args": dict(self.parts.model_args),
            "config": self.config.to_dict(),
            "config_hash": identity_hash(self.config),
            "iteration": self.state.iteration,
            "epoch": self.state.position.epoch,
            "batch_in_epoch": self.state.position.batch,
            "world_size": self.ctx.world_size,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_amp else {},
            "rng": rngs,
            "trainer": {
                "best_miou": self.state.best_miou,
                "nonfinite_skips": self.state.nonfinite_skips,
                "oom_skips": self.state.oom_skips,
                "empty_skips": self.state.empty_skips,
                "recent_losses": list(self.recent_losses),
                "recent_step_seconds": list(self.recent_times),
                "rank_digests": digests,
            },
            "metrics": self.state.last_metrics or {},
            "versions": {"stseg_train": __version__, "torch": str(torch.__version__)},
        }

    def save(self, name: str | None = None) -> None:
        """Rank 0 writes (periodic, or `name`); every rank then meets at a barrier."""
        payload = self.payload()
        if self.ctx.is_main:
            try:
                if name is None:
                    self.checkpoints.save(self.state.iteration, payload)
                else:
                    self.checkpoints.save_named(name, payload)
            except NonFiniteError:
                raise
            except StsegRuntimeError as error:  # disk full, file too large, I/O error
                raise TrainRuntimeError(self._unsaved_message(name, error)) from error
        barrier(self.ctx)

    def _unsaved_message(self, name: str | None, error: Exception) -> str:
        """One line: which checkpoint failed, why, and what a `--resume` would continue from."""
        newest = self.checkpoints.periodic()
        where = (
            f"the newest intact checkpoint is {newest[0][1].name} (iteration {newest[0][0]}); "
            f"free space and continue with --resume {self.run_dir}"
            if newest
            else "no earlier checkpoint exists"
        )
        what = f"{name}.pth" if name else f"the checkpoint of iteration {self.state.iteration}"
        return f"could not save {what}: {error}; {where}"

    # ---- one step -----------------------------------------------------------------------
    def _forward_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, int, int]:
        """(loss, valid voxels, correct voxels) of one batch: `Components.loss`, or cross-entropy."""
        with self._autocast():
            outputs = self.parts.forward(self.net, batch)
        if self.parts.loss is not None:
            result = self.parts.loss(outputs, batch)
            loss, n_valid, correct = result.loss, int(result.valid), int(result.correct)
        else:
            labels = check_labels(batch["labels"], self.config, batch["names"]).to(self.device)
            loss, n_valid, correct = batch_loss(outputs, labels, self.config, self.class_weights)
        poisoned = inject_fault("nan", self.ctx.rank, self.state.iteration, loss)
        return (loss if poisoned is None else poisoned), n_valid, correct

    def _autocast(self) -> Any:
        """The forward's arithmetic (`TrainConfig.precision`): autocast, or nothing for fp32."""
        return autocast_context(self.device, self.amp_dtype)

    def _no_sync(self) -> Any:
        """Backward without the gradient all-reduce (every batch but the last of a step)."""
        net: Any = self.net
        return net.no_sync() if self.ctx.distributed else contextlib.nullcontext()

    def step(self, stream: BatchStream) -> dict[str, float]:
        """One optimizer step over `iter_size` batches, skipped on every rank if any rank failed.

        Before each backward the ranks agree that every forward succeeded with a finite loss (one
        small all-reduce): DistributedDataParallel's backward is a collective, so a rank must not
        start it alone. Gradients come out averaged; a non-finite one is then non-finite on every
        rank alike. All `iter_size` batches are read in any case, so the data order never shifts.
        """
        config = self.config
        loss_sum, n_valid, correct, failed = 0.0, 0, 0, [0.0, 0.0]
        names: list[str] = []
        self.optimizer.zero_grad(set_to_none=True)
        for micro in range(config.iter_size):
            batch = stream.next()
            names += list(batch["names"])
            if any(failed):
                continue
            oom, loss = 0.0, None
            try:
                inject_fault("oom", self.ctx.rank, self.state.iteration)
                loss, valid, right = self._forward_loss(batch)
            except ValueError as error:
                if not is_single_voxel_norm(error):
                    raise
                raise single_voxel_norm_error(batch["names"], self.state.iteration + 1) from None
            except torch.OutOfMemoryError:
                oom = 1.0
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            value = float(loss.detach()) if loss is not None else 0.0
            nonfinite = 0.0 if oom or math.isfinite(value) else 1.0
            failed = all_reduce_sum([nonfinite, oom], self.ctx)
            if any(failed) or loss is None:
                continue
            last = micro == config.iter_size - 1
            with contextlib.nullcontext() if last else self._no_sync():
                self.scaler.scale(loss / config.iter_size).backward()
            loss_sum += value / config.iter_size
            n_valid += valid
            correct += right
        finite = not failed[0] and (self.use_amp or bool(failed[1]) or grads_finite(self.params))
        flags = [
            0.0 if finite else 1.0,
            failed[1],
            1.0 if (n_valid == 0 and not any(failed)) else 0.0,
            1.0 if self._stop_requested else 0.0,
            loss_sum if finite else 0.0,
            float(n_valid),
            float(correct),
        ]
        nonfinite, any_oom, empty, stop, loss_total, valid_total, correct_total = all_reduce_sum(
            flags, self.ctx
        )
        if nonfinite or any_oom or empty:
            self._skip(bool(nonfinite), bool(any_oom), bool(empty), names)
        else:
            self._consecutive_nonfinite = 0
            if self.use_amp:
                self.scaler.unscale_(self.optimizer)
            if config.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.params, config.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        with warnings.catch_warnings():
            # A skipped first step makes torch warn about the call order; the schedule is by design
            # a function of the iteration, skipped or not.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()
        self.state.iteration += 1
        self.state.position = stream.position
        self.last_names = names
        self._stop_requested = self._stop_requested or bool(stop)
        return {
            "loss": loss_total / self.ctx.world_size,
            "accuracy": correct_total / valid_total if valid_total else float("nan"),
            "skipped": float(bool(nonfinite or any_oom or empty)),
        }

    def _skip(self, nonfinite: bool, oom: bool, empty: bool, names: list[str]) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        it = self.state.iteration
        if nonfinite:
            self.state.nonfinite_skips += 1
            self._consecutive_nonfinite += 1
            log.warning(
                "iteration %d: non-finite loss or gradient, step skipped (%s)", it, ", ".join(names)
            )
            if self._consecutive_nonfinite >= self.config.max_consecutive_nonfinite:
                raise NonFiniteError(
                    f"iteration {it}: {self._consecutive_nonfinite} consecutive non-finite "
                    f"losses/gradients (last batch: {', '.join(names)}); stopping. The last good "
                    "checkpoint is unchanged; lower --set lr=... or enable --set clip_grad_norm=..."
                )
        if oom:
            self.state.oom_skips += 1
            epoch = self.state.position.epoch
            self._oom_in_epoch[epoch] = self._oom_in_epoch.get(epoch, 0) + 1
            log.warning(
                "iteration %d: out of memory on some rank, batch skipped (%s)", it, ", ".join(names)
            )
            if self._oom_in_epoch[epoch] > self.config.max_oom_skips_per_epoch:
                raise TrainRuntimeError(
                    f"iteration {it}: {self._oom_in_epoch[epoch]} out-of-memory skips this epoch; "
                    "lower --batch-size or --set max_points_per_batch=..., or raise --voxel-size"
                )
        if empty and not (nonfinite or oom):
            self.state.empty_skips += 1
            log.info("iteration %d: every voxel ignored, step skipped (%s)", it, ", ".join(names))

    # ---- the loop -----------------------------------------------------------------------
    def _evaluate(self, monitor: Monitor) -> None:
        """Rank 0 evaluates (only it holds the validation set); every rank then takes part in
        the same collectives, so their sequences of collectives never diverge."""
        best = False
        if self.ctx.is_main and self.parts.evaluate is not None:
            self.model.eval()
            with torch.no_grad(), self._autocast():  # validation in the training's precision
                summary = self.parts.evaluate(self.model)
            self.model.train()
            self.state.last_metrics = summary
            monitor.metrics(self.state.iteration, summary)
            if summary["miou"] > self.state.best_miou:
                self.state.best_miou = float(summary["miou"])
                best = True
        if all_gather_objects(best, self.ctx)[0]:
            self.save("best")
        barrier(self.ctx)

    def _write_metrics(self) -> None:
        if self.ctx.is_main and self.state.last_metrics is not None:
            record = {"iteration": self.state.iteration, **self.state.last_metrics}
            with atomic_write(self.run_dir / "metrics.json", "w") as handle:
                json.dump(record, handle, indent=2)

    def _install_sigterm(self) -> Callable[[], None]:
        try:
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread
            return lambda: None

        def uninstall() -> None:
            signal.signal(signal.SIGTERM, previous)

        return uninstall

    def _on_sigterm(self, _signum: int, _frame: Any) -> None:
        self._stop_requested = True

    def fit(self, until: int | None = None) -> TrainState:
        """Train until `max_iter`; checkpoints every `save_freq`, evaluates every `val_freq`.

        `until` stops early after that iteration (with a checkpoint), as an interruption would.
        """
        config = self.config
        stop_at = config.max_iter if until is None else min(until, config.max_iter)
        stream = BatchStream(
            self.parts.train_set,
            self.parts.collate,
            batch_size=config.batch_size,
            seed=config.seed,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            num_workers=config.num_workers,
            position=self.state.position,
        )
        monitor = Monitor(config, self.run_dir, self.ctx, start=self.state.iteration)
        uninstall = self._install_sigterm()
        self.model.train()
        try:
            while self.state.iteration < stop_at:
                tic = time.perf_counter()
                stats = self.step(stream)
                if self.heap_trim_every and self.state.iteration % self.heap_trim_every == 0:
                    release_free_heap()  # RSS stays flat instead of growing (see stseg_train.heap)
                inject_fault("exit", self.ctx.rank, self.state.iteration)
                stats["lr"] = float(self.scheduler.get_last_lr()[0])
                stats["time"] = time.perf_counter() - tic
                monitor.step(self.state.iteration, stats)
                self.recent_losses.append((self.state.iteration, stats["loss"]))
                self.recent_times.append(stats["time"])
                if self.on_step is not None:
                    self.on_step(self.state.iteration, stats["loss"], self.last_names)
                it = self.state.iteration
                if self._stop_requested:
                    self.save()
                    raise Preempted(
                        f"stopped by SIGTERM at iteration {it}; checkpoint written, relaunch with "
                        "--resume to continue"
                    )
                if it % config.val_freq == 0 or it == config.max_iter:
                    self._evaluate(monitor)
                if it % config.save_freq == 0 or it == stop_at:
                    self.save()
                    inject_fault("hang", self.ctx.rank, it)
            if self.state.iteration >= config.max_iter:
                self.save("final")
                self._write_metrics()
                if self.ctx.is_main and self.parts.on_finish is not None:
                    self.parts.on_finish(self.model)
        finally:
            uninstall()
            monitor.close()
        return self.state
