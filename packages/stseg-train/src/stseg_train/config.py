"""The training configuration: one dataclass, per-dataset recipe defaults, files and overrides.

Resolution order (later wins): the dataclass defaults, the dataset recipe (`RECIPES`), a config file
(`--config`, YAML, TOML or JSON, keys = field names), explicit command-line options, `--set
key=value` overrides. The resolved config is written once into the run directory (`config.json`) and
its identity hash (`identity_hash`) guards `--resume` against a different model or dataset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stseg_train.errors import TrainInputError
from stseg_train.options import RuntimeOptions, ToyOptions, field_types, merge_options

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DATASETS = ("scannet", "s3dis", "synthia4d", "synthetic")


@dataclass
class TrainConfig:
    """Every knob of a training run. Units: metres, iterations (optimizer steps)."""

    dataset: str = "scannet"
    data: str = ""
    out: str = ""
    weights: str = ""  # fine-tuning: initial weights (model only, loaded leniently)
    # model
    model: str = "Res16UNet34C"
    num_classes: int = 20
    features: str = "rgb"  # "rgb" (3 channels) or "rgb+xyz" (6: colour and normalised coordinates)
    conv1_kernel_size: int = 3
    dimension: int = 3
    bn_momentum: float = 0.02
    voxel_size: float = 0.02
    ignore_label: int = 255
    # optimisation
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    momentum: float = 0.9
    dampening: float = 0.1
    weight_decay: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    scheduler: str = "poly"  # poly | step | exp
    poly_power: float = 0.9
    step_size: int = 20000
    step_gamma: float = 0.1
    exp_gamma: float = 0.95
    exp_step_size: int = 1000
    batch_size: int = 9  # per process; the global batch is batch_size x world size
    iter_size: int = 1  # gradient accumulation: batches per optimizer step
    max_iter: int = 120000
    clip_grad_norm: float = 0.0  # 0 disables clipping
    # cross-entropy class weights frequency^-class_balance over the training points (0 = plain
    # cross-entropy, the original; 0.5 = inverse square root, lifts rare classes early on)
    class_balance: float = 0.0
    # forward arithmetic: fp32, or bf16 / fp16 autocast (stseg_models.precision); bf16 on CPUs
    # with AVX512-BF16 (about 2x faster for Res16UNet34C there), fp16 on GPUs with loss scaling
    precision: str = "fp32"
    amp: bool = False  # the older switch: fp16 autocast on CUDA when precision is fp32
    max_points_per_batch: int = 0  # 0 = no cap; otherwise trailing samples are dropped
    sync_bn: bool = False
    # data
    train_split: str = "train"
    val_split: str = "val"
    augment: bool = True
    elastic: bool = True  # elastic distortion in the training augmentation (the original's)
    # rotation about the upright axis in training: "full" (the original), "quarter" (k x 90
    # degrees, for axis-aligned scenes) or "none"
    rotation: str = "full"
    # voxel labels: "unanimous" (the original: voxels whose points disagree are ignored) or
    # "majority" (coarse voxels keep their boundary voxels; see stseg_data.voxelize)
    voxel_labels: str = "unanimous"
    num_workers: int = 0
    threads: int = 0  # torch CPU threads per process; 0 = torch's default (or cores / processes)
    # CPU training processes (gloo) when neither --gpus nor --procs is given; capped at the
    # machine's cores; 0 or 1 = train in this process
    cpu_procs: int = 0
    temporal_window: int = 3  # frames per 4D sample (synthia4d)
    # bookkeeping
    seed: int = 42
    save_freq: int = 1000
    val_freq: int = 1000
    keep_last: int = 2
    log_freq: int = 20
    max_consecutive_nonfinite: int = 5
    max_oom_skips_per_epoch: int = 10
    dist_timeout_s: float = 600.0
    tensorboard: bool = True
    progress: bool = True
    eval_rotations: int = 1
    # the main job (synthetic): scenes generated for training and validation
    synthetic_train_scenes: int = 24
    synthetic_val_scenes: int = 6
    # sections (`stseg_train.options`): `--set runtime.device=cpu`, or a mapping in a config file
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    toy: ToyOptions = field(default_factory=ToyOptions)
    # A task's run (e.g. "ssen-instance"): its name and its own settings, which the task reads
    # into its dataclass with `read_task_options`. "" = stseg-train's semantic segmentation.
    # Set by the task's code, not by stseg-train's --set or config files.
    task: str = ""
    task_options: dict[str, Any] = field(default_factory=dict)
    # Written by the synthetic job (the folder holding raw/ and prepared/), so that a resumed run
    # finds its own data; not a user setting (`stseg_train.synthetic`).
    synthetic_data_root: str = ""

    @property
    def in_channels(self) -> int:
        return {"rgb": 3, "rgb+xyz": 6}[self.features]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        return out


# The original work's recipes (ScanNet: Res16UNet34C at 2 cm, SGD 0.1, poly, batch 9, 120k
# iterations; S3DIS: Res16UNet18 at 5 cm, first kernel 5, colour + coordinates; Synthia4D: a 4D
# network on temporal windows). `synthetic` is the project's own, tuned for ~10 minutes on 2 cores.
RECIPES: dict[str, dict[str, Any]] = {
    "scannet": {"model": "Res16UNet34C", "voxel_size": 0.02, "num_classes": 20, "batch_size": 9},
    "s3dis": {
        "model": "Res16UNet18",
        "voxel_size": 0.05,
        "num_classes": 13,
        "conv1_kernel_size": 5,
        "features": "rgb+xyz",
        "batch_size": 8,
        "max_iter": 60000,
    },
    "synthia4d": {
        "model": "STRes16UNet14",
        "voxel_size": 30.0,  # Synthia4D is in centimetres (stseg-data pipeline recipe)
        "num_classes": 12,
        "dimension": 4,
        "batch_size": 4,
        "max_iter": 60000,
    },
    "synthetic": {
        # stseg's own light network (the 14-layer net with the 18F decoder): the full-resolution
        # decoder stage dominates CPU cost, 14F trains ~2.3x faster per step than 14A
        "model": "Res16UNet14F",
        "voxel_size": 0.1,
        "num_classes": 20,
        # one process, 2 rooms per step, torch's threads (cores / processes) and one data-loading
        # worker: measured on an idle 2-core machine 0.6 s/it, against 1.0 s/it for 1 thread and
        # 0.9 s/it for 2 gloo processes x 1 room (each step waits for the larger room). On a
        # machine busy with other work pass `--threads 1` (OpenMP threads then wait on each
        # other: 3.9 s/it against 14.6 s/it measured).
        "batch_size": 2,
        "num_workers": 1,
        # Adam learns faster than the original's SGD in a few hundred steps
        "optimizer": "adam",
        "lr": 0.001,
        "weight_decay": 0.0001,
        # short schedule: norms must forget their initial statistics within ~30 steps
        "bn_momentum": 0.1,
        # 10 cm voxels: 12 % of them hold several classes; the majority label keeps them
        # (the original's unanimous rule would ignore every object-floor contact voxel)
        "voxel_labels": "majority",
        "class_balance": 0.5,  # rare classes (sink, toilet, picture) count in the mIoU
        "elastic": False,  # 0.15 s per sample on the CPU, no gain at this budget
        "rotation": "quarter",  # the synthetic rooms are axis-aligned, like ScanNet's
        "max_iter": 720,  # measured: val mIoU 0.707 in 9 min 23 s of training + evaluation
        "save_freq": 240,
        "val_freq": 360,
        # validation averages 4 quarter turns (+0.014 mIoU measured; 20 rooms x 4 passes ~20 s)
        "eval_rotations": 4,
        "log_freq": 20,
        "synthetic_train_scenes": 80,  # one scene in five of the generated set is validation
        "synthetic_val_scenes": 20,
    },
}

# Fields that must match for `--resume` to continue a run (the rest may change, e.g. max_iter).
IDENTITY_FIELDS = (
    "dataset",
    "model",
    "num_classes",
    "features",
    "conv1_kernel_size",
    "dimension",
    "voxel_size",
    "ignore_label",
    "optimizer",
    "scheduler",
)


# Keys only code and saved configs set: `--set`, config files and recipes refuse them.
INTERNAL_FIELDS = ("task", "task_options", "synthetic_data_root")

# Where each key of the `extra` mapping of earlier versions' config.json went: section.field, or
# a field. A task run's other `extra` keys were the task's own: they move to `task_options`.
LEGACY_EXTRA = {
    "heap_mode": "runtime.heap_mode",
    "heap_trim_every": "runtime.heap_trim_every",
    "device": "runtime.device",
    "cache_scenes": "runtime.cache_scenes",
    "allow_reshard": "runtime.allow_reshard",
    "toy_scenes": "toy.scenes",
    "toy_points": "toy.points",
    "toy_bn": "toy.bn",
    "toy_ignore": "toy.ignore",
    "synthetic_data_root": "synthetic_data_root",
    "task": "task",
}
_EXTRA_GONE = (
    "config key 'extra' is gone: its keys are the sections runtime (device, heap_mode, "
    "heap_trim_every, cache_scenes, allow_reshard) and toy (scenes, points, bn, ignore), e.g. "
    "--set runtime.allow_reshard=true"
)


def legacy_extra(extra: Any, where: str) -> dict[str, Any]:
    """The keys that replace an earlier config.json's `extra` mapping (`LEGACY_EXTRA`).

    Without a task, a key not in `LEGACY_EXTRA` is refused as `extra` refused it; with one, the
    task's keys become `task_options` (the task validates them, `read_task_options`).
    """
    if not isinstance(extra, Mapping):
        raise TrainInputError(f"{where}: config key 'extra': expected a mapping, found {extra!r}")
    out: dict[str, Any] = {}
    task_options: dict[str, Any] = {}
    for key, value in extra.items():
        if key in LEGACY_EXTRA:
            out[LEGACY_EXTRA[key]] = value
        elif extra.get("task"):
            task_options[key] = value
        else:
            raise TrainInputError(
                f"{where}: unknown key extra.{key}; known keys: {', '.join(sorted(LEGACY_EXTRA))}"
            )
    if task_options:
        out["task_options"] = task_options
    return out


def apply_overrides(
    config: TrainConfig, values: Mapping[str, Any], source: str, *, saved: bool = False
) -> TrainConfig:
    """Return a copy of `config` with `values` set; unknown or mistyped keys raise naming `source`.

    A key may name a section's field (`runtime.device`), or a section may take a mapping (merged
    into it). `saved`: `values` is a saved config (config.json, a checkpoint's), which may hold the
    internal fields and an earlier version's `extra`.
    """
    values = dict(values)
    if "extra" in values:
        if not saved:
            raise TrainInputError(f"{source}: {_EXTRA_GONE}")
        values.update(legacy_extra(values.pop("extra"), source))
    fields = field_types(TrainConfig)
    known = set(fields) if saved else set(fields) - set(INTERNAL_FIELDS)
    unknown = sorted(str(k) for k in values if str(k).partition(".")[0] not in known)
    if unknown:
        raise TrainInputError(
            f"{source}: unknown config key(s) {', '.join(unknown)}; known keys: "
            f"{', '.join(sorted(known))}"
        )
    return merge_options(config, values, source)


def parse_set_options(items: typing.Sequence[str]) -> dict[str, Any]:
    """Parse `--set key=value` strings; values are read as YAML scalars (`0.1`, `true`, `[1, 2]`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise TrainInputError(f"--set {item!r}: expected key=value")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml), TOML (.toml) or JSON (.json) mapping of config keys."""
    path = Path(path)
    if not path.is_file():
        raise TrainInputError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise TrainInputError(
                f"{path}: unknown config format (use .yaml, .yml, .toml or .json)"
            )
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise TrainInputError(f"{path}: could not parse config ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TrainInputError(
            f"{path}: expected a mapping of config keys, found {type(data).__name__}"
        )
    return data


def resolve_config(
    dataset: str,
    *,
    config_file: str | Path | None = None,
    options: dict[str, Any] | None = None,
    sets: typing.Sequence[str] = (),
    base: dict[str, Any] | None = None,
) -> TrainConfig:
    """Defaults, then the dataset recipe, then the file, then CLI options (None = unset), then --set.

    `base` (a saved run's config, for --resume) replaces defaults and recipe; `dataset` is still
    set from the command, so resuming a run of another dataset is caught by `identity_diff`.
    """
    if dataset not in DATASETS:
        raise TrainInputError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if base is not None:
        config = apply_overrides(config_from_dict(base), {"dataset": dataset}, "command")
    else:
        config = apply_overrides(
            TrainConfig(dataset=dataset), RECIPES[dataset], f"recipe {dataset}"
        )
    if config_file is not None:
        config = apply_overrides(config, load_config_file(config_file), str(config_file))
    given = {k: v for k, v in (options or {}).items() if v is not None}
    config = apply_overrides(config, given, "command line")
    config = apply_overrides(config, parse_set_options(sets), "--set")
    validate(config)
    return config


def _finite(value: float) -> bool:
    return math.isfinite(value)


def validate(config: TrainConfig) -> None:
    """Raise `TrainInputError` on values no run can use.

    Every number that reaches torch (optimizer, schedule, DataLoader, threads, process group) or a
    modulo in the loop is checked here, so a bad `--set` ends as one line before the run folder
    exists instead of as a traceback from deep inside a library mid-run.
    """
    from stseg_models.precision import PRECISIONS  # (imports torch: not at module import)

    betas = tuple(config.adam_betas)
    checks = [
        (config.features in ("rgb", "rgb+xyz"), "features must be 'rgb' or 'rgb+xyz'"),
        (config.optimizer in ("sgd", "adam"), "optimizer must be 'sgd' or 'adam'"),
        (
            config.precision in PRECISIONS,
            f"precision must be fp32, bf16 or fp16, got {config.precision!r}",
        ),
        (config.scheduler in ("poly", "step", "exp"), "scheduler must be poly, step or exp"),
        (config.voxel_size > 0 and _finite(config.voxel_size), "voxel_size must be > 0"),
        (config.batch_size >= 1, "batch_size must be >= 1"),
        (config.iter_size >= 1, "iter_size must be >= 1"),
        (config.max_iter >= 1, "max_iter must be >= 1"),
        (config.lr > 0 and _finite(config.lr), "lr must be > 0"),
        (config.momentum >= 0 and _finite(config.momentum), "momentum must be >= 0"),
        (0.0 <= config.dampening <= 1.0, "dampening must be in [0, 1]"),
        (config.weight_decay >= 0 and _finite(config.weight_decay), "weight_decay must be >= 0"),
        (
            len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas),
            "adam_betas must be two values in [0, 1)",
        ),
        (config.poly_power >= 0 and _finite(config.poly_power), "poly_power must be >= 0"),
        (
            config.step_size >= 1 and config.exp_step_size >= 1,
            "step_size and exp_step_size must be >= 1",
        ),
        (
            config.step_gamma > 0
            and config.exp_gamma > 0
            and _finite(config.step_gamma)
            and _finite(config.exp_gamma),
            "step_gamma and exp_gamma must be > 0",
        ),
        (config.clip_grad_norm >= 0, "clip_grad_norm must be >= 0 (0 disables clipping)"),
        (config.max_points_per_batch >= 0, "max_points_per_batch must be >= 0 (0 = no cap)"),
        (0.0 <= config.bn_momentum <= 1.0, "bn_momentum must be in [0, 1]"),
        (config.conv1_kernel_size >= 1, "conv1_kernel_size must be >= 1"),
        (
            config.num_workers >= 0,
            "num_workers must be >= 0 (0 loads data in the training process)",
        ),
        (config.threads >= 0, "threads must be >= 0 (0 = torch's default)"),
        (config.cpu_procs >= 0, "cpu_procs must be >= 0"),
        (config.temporal_window >= 1, "temporal_window must be >= 1"),
        (config.log_freq >= 1, "log_freq must be >= 1"),
        (config.eval_rotations >= 1, "eval_rotations must be >= 1"),
        (config.max_consecutive_nonfinite >= 1, "max_consecutive_nonfinite must be >= 1"),
        (config.max_oom_skips_per_epoch >= 0, "max_oom_skips_per_epoch must be >= 0"),
        (
            config.dist_timeout_s > 0 and _finite(config.dist_timeout_s),
            "dist_timeout_s must be > 0",
        ),
        (
            config.synthetic_train_scenes >= 1 and config.synthetic_val_scenes >= 1,
            "synthetic_train_scenes and synthetic_val_scenes must be >= 1",
        ),
        (config.num_classes >= 2, "num_classes must be >= 2"),
        (config.save_freq >= 1 and config.val_freq >= 1, "save_freq and val_freq must be >= 1"),
        (config.keep_last >= 1, "keep_last must be >= 1"),
        (config.dimension in (3, 4), "dimension must be 3 or 4"),
        (0.0 <= config.class_balance <= 1.0, "class_balance must be in [0, 1]"),
        (config.rotation in ("full", "quarter", "none"), "rotation must be full, quarter or none"),
        (
            config.voxel_labels in ("unanimous", "majority"),
            "voxel_labels must be unanimous or majority",
        ),
    ]
    messages = [message for ok, message in checks if not ok]
    messages += config.runtime.problems() + config.toy.problems()
    if config.task_options and not config.task:
        messages.append("task_options are a task's settings: they need a task")
    if messages:
        raise TrainInputError(f"config: {messages[0]}")


def identity_hash(config: TrainConfig) -> str:
    """sha256 over the fields that must not change across `--resume` (`IDENTITY_FIELDS`)."""
    data = config.to_dict()
    blob = json.dumps({k: data[k] for k in IDENTITY_FIELDS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def identity_diff(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    """Human-readable differences in identity fields between a saved config dict and `config`."""
    now = config.to_dict()
    return [
        f"{k}: run has {saved.get(k)!r}, this command has {now[k]!r}"
        for k in IDENTITY_FIELDS
        if saved.get(k) != now[k]
    ]


def config_from_dict(data: Mapping[str, Any], source: str = "saved config") -> TrainConfig:
    """Rebuild a config written by `TrainConfig.to_dict` (e.g. from a run's config.json, named
    by `source` in messages); an earlier version's `extra` mapping is read into the sections."""
    return apply_overrides(TrainConfig(), data, source, saved=True)
