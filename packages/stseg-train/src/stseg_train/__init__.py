"""Training, distributed launch, exact resume and evaluation for stseg semantic segmentation models.

The public API (everything in `__all__`; other modules are internal and may change):

- configuration: `TrainConfig`, `resolve_config` (recipe, file, options, `--set`), `validate_config`,
  `RuntimeOptions` (the config's `runtime` section: device, heap, scene cache, resharding)
- a task's own settings: the task declares a dataclass and keeps it in the config's
  `task_options` with `with_task_options(config, task, options)`; `read_task_options(config,
  task, kind)` reads it back as `kind`, refusing a run of another task and any unknown or
  mistyped key (in one line naming `task_options.KEY`)
- a task's hooks: `Components` (model, `forward`, data, optional `loss` returning a `StepLoss`,
  `on_finish`), `LossFn`, `unwrap_model` (the network inside a DistributedDataParallel wrapper)
- running: `train` (run folder opened, locked, processes launched), `worker` (one process's body),
  `train_command` (what `stseg-train DATASET` calls), `TrainState`, `DistContext`, `check_gpus`
- run folders: `CONFIG_NAME`, `load_run_config`, `checkpoint_bytes_estimate`
- data: `make_synthetic_dataset` (the generated ScanNet-like scenes of the main job)

Names are imported on first use, so `import stseg_train` stays cheap (the CLI's `--help`).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("stseg-train")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# public name -> (module, attribute)
_EXPORTS = {
    "TrainConfig": ("stseg_train.config", "TrainConfig"),
    "resolve_config": ("stseg_train.config", "resolve_config"),
    "RuntimeOptions": ("stseg_train.options", "RuntimeOptions"),
    "read_task_options": ("stseg_train.options", "read_task_options"),
    "with_task_options": ("stseg_train.options", "with_task_options"),
    "validate_config": ("stseg_train.config", "validate"),
    "Components": ("stseg_train.state", "Components"),
    "StepLoss": ("stseg_train.state", "StepLoss"),
    "LossFn": ("stseg_train.state", "LossFn"),
    "TrainState": ("stseg_train.state", "TrainState"),
    "DistContext": ("stseg_train.distributed", "DistContext"),
    "check_gpus": ("stseg_train.distributed", "check_gpus"),
    "unwrap_model": ("stseg_train.distributed", "unwrap_model"),
    "train": ("stseg_train.run", "train"),
    "worker": ("stseg_train.run", "worker"),
    "train_command": ("stseg_train.launch", "train_command"),
    "CONFIG_NAME": ("stseg_train.runfolder", "CONFIG_NAME"),
    "load_run_config": ("stseg_train.runfolder", "load_run_config"),
    "checkpoint_bytes_estimate": ("stseg_train.runfolder", "checkpoint_bytes_estimate"),
    "make_synthetic_dataset": ("stseg_train.synthetic", "make_synthetic_dataset"),
}
__all__ = [
    "CONFIG_NAME",
    "Components",
    "DistContext",
    "LossFn",
    "RuntimeOptions",
    "StepLoss",
    "TrainConfig",
    "TrainState",
    "__version__",
    "check_gpus",
    "checkpoint_bytes_estimate",
    "load_run_config",
    "make_synthetic_dataset",
    "read_task_options",
    "resolve_config",
    "train",
    "train_command",
    "unwrap_model",
    "validate_config",
    "with_task_options",
    "worker",
]

if TYPE_CHECKING:
    from stseg_train.config import TrainConfig, resolve_config
    from stseg_train.config import validate as validate_config
    from stseg_train.distributed import DistContext, check_gpus, unwrap_model
    from stseg_train.launch import train_command
    from stseg_train.options import RuntimeOptions, read_task_options, with_task_options
    from stseg_train.run import train, worker
    from stseg_train.runfolder import CONFIG_NAME, checkpoint_bytes_estimate, load_run_config
    from stseg_train.state import Components, LossFn, StepLoss, TrainState
    from stseg_train.synthetic import make_synthetic_dataset


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'stseg_train' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value
