"""Observability on rank 0: a progress bar with ETA, TensorBoard scalars, and log lines."""

from __future__ import annotations

import logging
import resource
import sys
from pathlib import Path
from typing import Any

import torch

from stseg_train.config import TrainConfig
from stseg_train.distributed import DistContext
from stseg_train.metrics import format_table

log = logging.getLogger("stseg_train")


def peak_memory_mb(device: str) -> float:
    """Peak CUDA memory allocated on `device`, or this process's peak RSS on CPU, in MiB."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


class Monitor:
    """Progress bar + TensorBoard writer, both only on rank 0 and only if enabled."""

    def __init__(self, config: TrainConfig, run_dir: Path, ctx: DistContext, start: int) -> None:
        self.config = config
        self.ctx = ctx
        self.bar: Any = None
        self.writer: Any = None
        if not ctx.is_main:
            return
        if config.progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=config.max_iter,
                initial=start,
                desc="train",
                unit="it",
                dynamic_ncols=True,
                file=sys.stderr,
            )
        if config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is a dependency, but never fail a run over logs
                log.warning("tensorboard is not importable; no TensorBoard logs")
            else:
                self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start + 1)

    def step(self, iteration: int, stats: dict[str, float]) -> None:
        if not self.ctx.is_main:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{stats['lr']:.4f}")
        if iteration % self.config.log_freq == 0 or iteration == 1:
            memory = peak_memory_mb(self.ctx.device)
            if self.writer is not None:
                for key in ("loss", "accuracy", "lr", "time"):
                    self.writer.add_scalar(f"train/{key}", stats[key], iteration)
                self.writer.add_scalar("train/memory_mb", memory, iteration)
            if self.bar is None:
                log.info(
                    "iter %d loss %.4f acc %.3f lr %.5f %.2fs/it mem %.0f MiB",
                    iteration,
                    stats["loss"],
                    stats["accuracy"],
                    stats["lr"],
                    stats["time"],
                    memory,
                )

    def metrics(self, iteration: int, summary: dict[str, Any]) -> None:
        if not self.ctx.is_main:
            return
        if self.writer is not None:
            for key in ("miou", "mean_accuracy", "overall_accuracy"):
                self.writer.add_scalar(f"val/{key}", summary[key], iteration)
            for name, row in summary["per_class"].items():
                if row["iou"] is not None:
                    self.writer.add_scalar(f"val_iou/{name}", row["iou"], iteration)
        message = f"validation at iteration {iteration}:\n{format_table(summary)}"
        if self.bar is not None:
            self.bar.write(message)
        else:
            log.info(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
