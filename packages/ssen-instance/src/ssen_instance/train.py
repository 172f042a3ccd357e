"""`ssen-instance train`: the embedding network trained through stseg-train's trainer.

stseg-train's trainer brings checkpoints (atomic, hashed, retained), `--resume`, distribution
(`--gpus N`, torchrun), lockstep skipping of non-finite / out-of-memory steps, gradient clipping,
schedules and logging. SSEN plugs in through stseg-train's public task hooks only
(`stseg_train.Components`): `forward` runs the embedding network, `loss` is the discriminative
loss (`ssen_loss`, returning a `stseg_train.StepLoss`), `on_finish` writes `instance.pt`; the run
is `stseg_train.train` with `ssen_components`. SSEN's own settings (`SsenOptions`: recipe, scene
files, semantic checkpoint, loss constants, background head) are the run config's task section,
written with `stseg_train.with_task_options` and read back, validated, with
`stseg_train.read_task_options` (`ssen_options`).

SSEN's recipe (`ssen`, the default): Adam at 1e-4, step schedule (x0.8 every 10k iterations),
gradient-norm clip 0.5, batch 8, 2 cm voxels, Mink16UNet34C with an 8-D embedding head initialised
from the semantic checkpoint minus its head. `synthetic-cpu` is the short CPU recipe for the
synthetic scenes (`RECIPES`).

Batch norms: the embeddings are used in evaluation mode, with the norms' running statistics. With
the original momentum (0.02) those still hold mostly their initial values (mean 0, variance 1)
after a few hundred steps (0.98^80 = 20 % of the initial value left after 80), and the embeddings
of evaluation mode collapse to within 0.1 of each other while those of training mode are ~0.6
apart; short recipes therefore use momentum 0.1.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ssen_instance.dataset import SsenDataset, collate_batch
from ssen_instance.errors import InstanceInputError
from ssen_instance.loss import DiscriminativeLossConfig, background_loss, discriminative_loss
from ssen_instance.model import (
    BACKBONE,
    EMBEDDING_DIM,
    build_embedding_model,
    forward_sparse,
    init_from_semantic,
    save_instance_checkpoint,
)
from ssen_instance.scenes import list_scene_files
from stseg_train import (
    CONFIG_NAME,
    Components,
    DistContext,
    LossFn,
    StepLoss,
    TrainConfig,
    TrainState,
    check_gpus,
    checkpoint_bytes_estimate,
    load_run_config,
    read_task_options,
    train,
    with_task_options,
)
from stseg_train import validate_config as validate

log = logging.getLogger(__name__)
TASK = "ssen-instance"


@dataclass(frozen=True)
class SsenOptions:
    """SSEN's section of a run's config (`TrainConfig.task_options` of task `ssen-instance`)."""

    recipe: str = "ssen"  # the `RECIPES` entry the run started from (a resume keeps it)
    semantic_weights: str = ""  # semantic checkpoint the backbone starts from ("" = none)
    train_files: tuple[str, ...] = ()  # the SSEN scene files trained on (absolute paths)
    loss: DiscriminativeLossConfig = field(default_factory=DiscriminativeLossConfig)
    background_head: bool = False  # a background logit after the embedding channels
    background_weight: float = 1.0  # its loss's weight beside the discriminative loss


def ssen_options(config: TrainConfig, where: str = "config") -> SsenOptions:
    """The run's `SsenOptions`, validated: a config of another task, an unknown or mistyped key
    (`task_options.KEY`, named with `where`) or a negative background weight raises."""
    options = read_task_options(config, TASK, SsenOptions, where=where)
    if not options.background_weight >= 0.0:
        raise InstanceInputError(f"background_weight must be >= 0, got {options.background_weight}")
    return options


def ssen_loss(config: TrainConfig) -> LossFn:
    """The discriminative loss on instance ids (batch['labels']), plus the background head's loss
    when the network has one: stseg-train's public loss hook (`Components.loss`)."""
    options = ssen_options(config)
    cfg = options.loss
    dim = config.num_classes
    head = options.background_head
    weight = options.background_weight

    def loss(outputs: torch.Tensor, batch: dict[str, Any]) -> StepLoss:
        outputs = outputs.float()
        instances = batch["labels"].to(outputs.device)
        scene = batch["coords"][:, 0].to(outputs.device)
        out = discriminative_loss(outputs[:, :dim], instances, scene, cfg, check_finite=False)
        total = out["loss"]
        if head:
            share = batch["background"].to(outputs.device)
            total = total + weight * background_loss(outputs[:, dim], share)
        # "valid" = voxels with an instance; a batch without any is skipped as empty (no signal)
        return StepLoss(loss=total, valid=int((instances > 0).sum()))

    return loss


def _save_instance(model: torch.nn.Module, config: TrainConfig) -> None:
    """Rank 0, at the end of the run: the instance checkpoint `ssen-instance eval` / `predict` read."""
    save_instance_checkpoint(
        Path(config.out) / "instance.pt",
        model,
        voxel_size=config.voxel_size,
        background_head=has_background_head(config),
        extra={"loss": asdict(ssen_options(config).loss)},
    )


def has_background_head(config: TrainConfig) -> bool:
    """Whether the run's network has the background head (`ssen_instance.model`) after its
    `config.num_classes` embedding channels."""
    return ssen_options(config).background_head


def _forward(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    device = next(model.parameters()).device
    return forward_sparse(model, batch["coords"].to(device), batch["features"].to(device))


def ssen_components(config: TrainConfig, ctx: DistContext) -> Components:
    """Model (initialised from the semantic checkpoint), data and forward of an SSEN run."""
    options = ssen_options(config)
    outputs = config.num_classes + int(options.background_head)
    model = build_embedding_model(
        config.model, outputs, config.in_channels, bn_momentum=config.bn_momentum
    )
    weights = options.semantic_weights
    if weights:
        report = init_from_semantic(model, weights)
        if ctx.is_main:
            log.info("initialised from %s:\n%s", weights, report.table())
    files = [Path(f) for f in options.train_files]
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
        loss=ssen_loss(config),
        on_finish=partial(_save_instance, config=config),
    )


# Named recipes. `ssen` is the original's (GPUs, days: 60k iterations at 2 cm). `synthetic-cpu`
# fits the 20-CPU-minute budget on stseg-data's synthetic ScanNet scenes (points ~3.5 cm
# apart): 5 cm voxels (at 2 cm neighbouring points are not neighbouring voxels, so the first
# convolutions see isolated voxels), the light Res16UNet14F (the synthetic semantic job's network,
# so its checkpoint initialises every backbone tensor; 1.5-2 s per step at 5 cm), Adam at 1e-3,
# batch 2, one thread (OpenMP threads wait on each other on small kernels), and norms with
# momentum 0.1 so that their running statistics are learnt within the run (module docstring).
# No background head (`ssen_instance.model`; `background_head=True` adds it): the wall and floor
# points the semantic job's 10 cm voxels hand over cost AP50 0.64 vs 0.78 without them, but the
# head did not remove them within this budget (measured on the demo's rooms, 700 iterations:
# weight 1.0 removed 34 % of them and left AP50 0.623, the embeddings worse, ground-truth-semantics
# AP50 0.710 vs 0.823; weight 0.1 removed 1 %, AP50 0.642).
RECIPES: dict[str, dict[str, Any]] = {
    "ssen": {
        "model": BACKBONE,
        "voxel_size": 0.02,
        "lr": 1e-4,
        "batch_size": 8,
        "max_iter": 60000,
        "save_freq": 1000,
        "step_size": 10000,
        "bn_momentum": 0.02,
    },
    "synthetic-cpu": {
        "model": "Res16UNet14F",
        "voxel_size": 0.05,
        "lr": 1e-3,
        "batch_size": 2,
        # measured: 19 min 58 s on one core, AP50 0.512 (17 min 39 s, AP50 0.501 on 2026-12-03).
        # A poly decay over 750 steps (19 min 34 s) was no better (AP50 0.514; with the
        # `vote_size` score 0.633 vs 0.640), nor 10 cm voxels (1400 steps in 12.5 min: HDBSCAN's
        # per-cell minimum size then over-splits, AP50 0.36-0.60); benchmarks/diagnose_embeddings.py
        "max_iter": 700,
        "save_freq": 150,
        "step_size": 10000,
        "bn_momentum": 0.1,
        "threads": 1,
        "log_freq": 10,
        "background_head": False,
    },
}


def _loss_constants(values: dict[str, Any]) -> dict[str, Any]:
    known = DiscriminativeLossConfig.__dataclass_fields__
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InstanceInputError(
            f"unknown loss setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return asdict(DiscriminativeLossConfig(**values))


def ssen_config(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    recipe: str = "ssen",
    semantic_weights: str | os.PathLike[str] | None = None,
    embedding_dim: int = EMBEDDING_DIM,
    seed: int = 42,
    **overrides: Any,
) -> TrainConfig:
    """An SSEN recipe as a stseg-train `TrainConfig` (scene files listed in its `SsenOptions`).

    `overrides` (e.g. model, lr, batch_size, max_iter, save_freq) replace the recipe's values;
    None means "the recipe's".
    """
    if recipe not in RECIPES:
        raise InstanceInputError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    files = [str(f.resolve()) for f in list_scene_files(data)]
    config = TrainConfig(
        dataset="scannet",
        data=str(data),
        out=str(out),
        num_classes=embedding_dim,
        optimizer="adam",
        weight_decay=0.0,
        scheduler="step",
        step_gamma=0.8,
        clip_grad_norm=0.5,
        seed=seed,
        progress=False,
        tensorboard=False,
    )
    options = SsenOptions(
        recipe=recipe,
        semantic_weights=str(semantic_weights) if semantic_weights else "",
        train_files=tuple(files),
    )
    config = with_task_options(config, TASK, options)
    given = {k: v for k, v in overrides.items() if v is not None}
    return _with_settings(config, {**RECIPES[recipe], **given})


def _with_settings(config: TrainConfig, settings: dict[str, Any]) -> TrainConfig:
    """`config` with `settings` (recipe entries, options given) set on it, then validated.

    SSEN's own keys (`SsenOptions`: loss, background_head, background_weight) go to its task
    section, the others to stseg-train's fields."""
    options = ssen_options(config)
    for key, value in settings.items():
        if key == "loss":  # the discriminative loss's constants (`DiscriminativeLossConfig`)
            options = replace(options, loss=DiscriminativeLossConfig(**_loss_constants(value)))
            continue
        if key == "background_head":
            options = replace(options, background_head=bool(value))
            continue
        if key == "background_weight":
            if not float(value) >= 0.0:
                raise InstanceInputError(f"background_weight must be >= 0, got {value}")
            options = replace(options, background_weight=float(value))
            continue
        if not hasattr(config, key) or key in ("task", "task_options"):
            raise InstanceInputError(f"unknown training setting {key!r}")
        setattr(config, key, value)
    config = with_task_options(config, TASK, options)
    config.val_freq = max(config.val_freq, config.max_iter + 1)
    validate(config)
    return config


def resume_config(
    run: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    recipe: str | None = None,
    semantic_weights: str | os.PathLike[str] | None = None,
    embedding_dim: int | None = None,
    **overrides: Any,
) -> TrainConfig:
    """The saved config of run `run`, with the options given now (not None) on top.

    The run's recipe, scene files, model and every other setting carry over, so `--resume RUN`
    alone continues exactly; `--max-iter` etc. change what they name. `data` lists the scene files
    again (moved data). A folder without a run, or a run of another task, raises.
    """
    if not (Path(run) / CONFIG_NAME).is_file():  # the message names the option, as stseg-train's
        raise InstanceInputError(f"--resume {run}: not a training run (no {CONFIG_NAME})")
    config = load_run_config(Path(run))
    if config.task != TASK:
        raise InstanceInputError(
            f"--resume {run}: not an ssen-instance run (a semantic run? continue it with "
            f"`stseg-train {config.dataset} --resume {run}`)"
        )
    options = ssen_options(config, where=str(Path(run) / CONFIG_NAME))
    saved_recipe = options.recipe
    if recipe is not None and recipe != saved_recipe:
        raise InstanceInputError(f"--recipe {recipe}: the run {run} uses recipe {saved_recipe!r}")
    if embedding_dim is not None and embedding_dim != config.num_classes:
        raise InstanceInputError(
            f"--embedding-dim {embedding_dim}: the run {run} has {config.num_classes} dimensions"
        )
    if data is not None:
        files = tuple(str(f.resolve()) for f in list_scene_files(data))
        options = replace(options, train_files=files)
        config.data = str(data)
    if semantic_weights is not None:
        options = replace(options, semantic_weights=str(semantic_weights))
    config = with_task_options(config, TASK, options)
    config.out = str(run)
    return _with_settings(config, {k: v for k, v in overrides.items() if v is not None})


def command_config(
    *,
    data: str | os.PathLike[str] | None,
    out: str | os.PathLike[str] | None,
    resume: str | None = None,
    recipe: str | None = None,
    semantic_weights: str | os.PathLike[str] | None = None,
    embedding_dim: int | None = None,
    **overrides: Any,
) -> tuple[TrainConfig, bool]:
    """How `ssen-instance train`'s `--data`, `--out` and `--resume` combine: (config, resuming).

    `resume` None: a new run of `recipe` (default `ssen`) needs `data` and `out`. `resume` "" (the
    bare flag) continues the run in `out`; `resume` RUN continues RUN (`out`, if given, must name
    the same folder); see `resume_config`.
    """
    if resume is None:
        if data is None or out is None:
            raise InstanceInputError(
                "a new run needs --data and --out (continue an existing run with --resume RUN)"
            )
        config = ssen_config(
            data, out, recipe=recipe or "ssen", semantic_weights=semantic_weights,
            embedding_dim=EMBEDDING_DIM if embedding_dim is None else embedding_dim, **overrides,
        )  # fmt: skip
        return config, False
    if resume and out is not None and Path(out) != Path(resume):
        raise InstanceInputError(f"--resume {resume} and --out {out} name different runs")
    run = resume or out
    if not run:
        raise InstanceInputError("--resume needs the run folder: --resume RUN (or --out RUN)")
    config = resume_config(
        run, data=data, recipe=recipe, semantic_weights=semantic_weights,
        embedding_dim=embedding_dim, **overrides,
    )  # fmt: skip
    return config, True


def train_instance(
    config: TrainConfig,
    *,
    gpus: int = 0,
    procs: int = 0,
    resume: bool = False,
    restart_from_scratch: bool = False,
) -> TrainState | None:
    """Run SSEN training (in this process, or `gpus` / `procs` spawned processes)."""
    if gpus and procs:
        raise InstanceInputError("pass either --gpus or --procs, not both")
    if gpus:
        check_gpus(gpus)
    # stseg-train's run folder rules: checked before anything is written, locked while training
    # (a second --resume of the same run is refused), a refused new run leaves nothing behind
    return train(
        config,
        ssen_components,
        resume=resume,
        restart_from_scratch=restart_from_scratch,
        gpus=gpus,
        procs=procs,
        checkpoint_bytes=checkpoint_bytes(config),
    )


def checkpoint_bytes(config: TrainConfig) -> int:
    """About how many bytes one checkpoint of the run's embedding network takes."""
    outputs = config.num_classes + int(has_background_head(config))
    return checkpoint_bytes_estimate(
        lambda: build_embedding_model(
            config.model, outputs, config.in_channels, bn_momentum=config.bn_momentum
        )
    )
