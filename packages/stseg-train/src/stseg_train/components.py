"""The real components of a run: a `stseg_models` network, its forward pass, the dataset.

`dataset_components(config, ctx)` is the factory `stseg_train.run.train` calls in every process.
Fine-tuning weights (`--weights`) load leniently through `stseg_models.weights.load_weights`: the
wrapper prefix is stripped (``module.``, DepthContrast's ``trunk.0.``), shape mismatches such as a
head of another class count are skipped and listed, and a file sharing under half of the
parameters is refused as the wrong file. Optimizer state in that file is never used.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from functools import partial
from typing import Any

import numpy as np
import torch

from stseg_data.dataset import make_collate_fn
from stseg_train.config import TrainConfig
from stseg_train.data import SceneSamples, split_items
from stseg_train.distributed import DistContext, unwrap_model
from stseg_train.evaluate import class_names, evaluate_scenes
from stseg_train.loss import class_weights
from stseg_train.state import Components

log = logging.getLogger(__name__)
MIN_WEIGHT_FRACTION = 0.5


def sparse_forward(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """Logits [M, C] of a `stseg_models` network, row i for the batch's voxel i."""
    from stseg_models.inference import output_rows  # the engine may reorder rows (minkowski)

    network: Any = unwrap_model(model)  # stseg_models networks carry their sparse engine as `_me`
    me = network._me
    device = next(model.parameters()).device
    coords = batch["coords"].to(device)
    out = model(me.SparseTensor(batch["features"].to(device), coordinates=coords))
    rows = output_rows(out.C, coords)
    return out.F if rows is None else out.F[rows.to(out.F.device)]


def build_network(config: TrainConfig, log_report: bool = True) -> torch.nn.Module:
    """The configured network, with `config.weights` loaded leniently if given."""
    from stseg_models import build_model

    model = build_model(
        config.model,
        config.in_channels,
        config.num_classes,
        conv1_kernel_size=config.conv1_kernel_size,
        dimension=config.dimension,
        bn_momentum=config.bn_momentum,
    )
    if config.weights:
        load_pretrained(model, config.weights, log_report=log_report)
    return model


def checkpoint_bytes(config: TrainConfig) -> int:
    """About how many bytes one checkpoint of `config`'s network takes (its free-space check).

    Building the network here also refuses an unknown --model before the run folder exists.
    """
    from stseg_train.runfolder import checkpoint_bytes_estimate

    return checkpoint_bytes_estimate(lambda: build_network(replace(config, weights="")))


def load_pretrained(model: torch.nn.Module, path: str, *, log_report: bool = True) -> Any:
    """Copy matching tensors of checkpoint `path` into `model`; returns the LoadReport."""
    from stseg_models.checkpoint import read_checkpoint
    from stseg_models.weights import load_weights

    checkpoint = read_checkpoint(path)
    report = load_weights(
        model, checkpoint.state_dict, strict=False, min_fraction=MIN_WEIGHT_FRACTION, where=path
    )
    if log_report:
        log.info("--weights %s:\n%s", path, report.table())
    return report


def inference_meta(config: TrainConfig, model: torch.nn.Module) -> dict[str, Any]:
    """Keys that make a training checkpoint an stseg-models checkpoint (3D colour models only)."""
    if config.features != "rgb" or config.dimension != 3:
        return {}
    from stseg_data import labels
    from stseg_models.checkpoint import FORMAT, SCHEMA_VERSION, InferenceSpec

    scannet_like = config.dataset in ("scannet", "synthetic") and config.num_classes == 20
    spec = InferenceSpec(
        class_names=class_names(config),
        voxel_size=config.voxel_size,
        dataset="scannet"
        if scannet_like
        else (config.dataset if config.dataset == "s3dis" else None),
        label_ids=list(labels.SCANNET_NYU40_IDS) if scannet_like else None,
        features="rgb",
        color_scale=1.0,
        color_offset=-0.5,  # stseg_data.pipelines: voxel colour in [0, 1] minus 0.5
        ignore_label=config.ignore_label,
    )
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "model": dict(_model_args(model)),
        "inference": asdict(spec),
    }


def dataset_components(config: TrainConfig, ctx: DistContext) -> Components:
    """Network, forward, training samples, collate and (rank 0) validation of a real dataset."""
    train_set = SceneSamples(split_items(config, config.train_split), config, train=True)
    val_items = split_items(config, config.val_split) if ctx.is_main else []
    model = build_network(config, log_report=ctx.is_main)
    evaluate = None
    if val_items:
        val_set = SceneSamples(val_items, config, train=False)
        evaluate = partial(_evaluate, samples=val_set, rotations=config.eval_rotations)
    return Components(
        model=model,
        model_name=config.model,
        model_args=_model_args(model),
        forward=sparse_forward,
        train_set=train_set,
        collate=make_collate_fn(config.max_points_per_batch or None),
        evaluate=evaluate,
        export_meta=inference_meta(config, model),
        class_weights=_class_weights(config, train_set),
    )


def _class_weights(config: TrainConfig, train_set: SceneSamples) -> torch.Tensor | None:
    """`config.class_balance` weights from the label counts of every training point."""
    if config.class_balance <= 0:
        return None
    counts = np.zeros(config.num_classes, dtype=np.int64)
    for index in range(len(train_set)):
        labels = np.asarray(train_set.cloud(index).labels)
        labels = labels[(labels >= 0) & (labels < config.num_classes)]
        counts += np.bincount(labels, minlength=config.num_classes)
    weights = class_weights(counts, config.class_balance)
    log.info("class weights (class_balance %.2f): %s", config.class_balance,
             " ".join(f"{w:.2f}" for w in weights))  # fmt: skip
    return torch.from_numpy(weights)


def _evaluate(model: torch.nn.Module, *, samples: SceneSamples, rotations: int) -> dict[str, Any]:
    return evaluate_scenes(model, sparse_forward, samples, rotations=rotations)


def _model_args(model: torch.nn.Module) -> dict[str, Any]:
    network: Any = model  # set by stseg_models.build_model
    return dict(network.model_args)
