"""Observability on rank 0: a progress bar with ETA, TensorBoard scalars, log lines, and the
run's `log.jsonl` (one JSON object per logged step or validation, the file `stseg-viz curves`
reads)."""

from __future__ import annotations

import json
import logging
import resource
import sys
from pathlib import Path
from typing import IO, Any

import torch

from stseg_data.atomic import atomic_write
from stseg_train.config import TrainConfig
from stseg_train.distributed import DistContext
from stseg_train.metrics import format_table

log = logging.getLogger("stseg_train")
LOG_NAME = "log.jsonl"  # in the run folder


def open_training_log(run_dir: Path, start: int) -> IO[str]:
    """The run's `log.jsonl`, open for appending, line-buffered (a killed run loses no line).

    A run resumed from its checkpoint at `start` repeats the iterations after it, so the records a
    killed run logged past `start` are dropped first (and a half-written last line): the log then
    holds each iteration once, as a straight run's would.
    """
    path = run_dir / LOG_NAME
    if path.exists():
        kept = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            step = record.get("iter") if isinstance(record, dict) else None
            if isinstance(step, int) and step <= start:
                kept.append(line + "\n")
        with atomic_write(path, "w") as handle:
            handle.write("".join(kept))
    return path.open("a", buffering=1)


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
        self.log_file: IO[str] | None = None
        if not ctx.is_main:
            return
        self.log_file = open_training_log(run_dir, start)
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
            keys = ("loss", "accuracy", "lr", "time")
            self._record({"iter": iteration, **{k: stats[k] for k in keys}, "memory_mb": memory})
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
        keys = ("miou", "mean_accuracy", "overall_accuracy")
        self._record({"iter": iteration, **{f"val_{key}": summary[key] for key in keys}})
        message = f"validation at iteration {iteration}:\n{format_table(summary)}"
        if self.bar is not None:
            self.bar.write(message)
        else:
            log.info(message)

    def _record(self, record: dict[str, Any]) -> None:
        if self.log_file is not None:
            self.log_file.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")

    def close(self) -> None:
        if self.log_file is not None:
            self.log_file.close()
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _plain(value: Any) -> Any:
    """A JSON number for a tensor or NumPy scalar; NaN as null (JSON has no NaN)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
