"""The SSEN embedding network: a registry backbone whose 1x1 head outputs an embedding.

`build_embedding_model` builds e.g. Mink16UNet34C with `embedding_dim` outputs (its `final` 1x1
convolution is the embedding head). `init_from_semantic` copies a semantic-segmentation checkpoint
into it except that head (`final.*`), as SSEN initialises its instance network.
`save_instance_checkpoint` / `load_instance_model` use stseg-models' checkpoint format, with the
SSEN settings (embedding size, voxel size, clustering) kept in its `extra` entries.

Background head (optional, `background_head=True`): one more output channel after the embedding,
a logit of "this voxel is background" (wall, floor, unannotated). The semantic network removes the
background at its own, coarser voxel size, which keeps the wall and floor points next to every
object (measured on the synthetic rooms: 166k of 1.16M background points kept, 71 % of them within
5 cm of an object); the head, trained on exactly what the semantic network lets through, removes
them at the embedding network's resolution. Its output is named `BACKGROUND_OUTPUT`. Opt-in
(`ssen_config(..., background_head=True, background_weight=w)`): on the synthetic rooms, within
the 20-minute recipe, it did not raise AP (see `ssen_instance.train.RECIPES`).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ssen_instance.errors import InstanceInputError
from stseg_models.checkpoint import InferenceSpec, read_checkpoint, save_checkpoint
from stseg_models.checkpoint_io import read_checkpoint_file
from stseg_models.weights import LoadReport, load_weights
from stseg_models.zoo import build_model

BACKBONE = "Mink16UNet34C"
EMBEDDING_DIM = 8
HEAD_PREFIX = "final."
VOXEL_SIZE = 0.02
BACKGROUND_OUTPUT = "background_logit"


def build_embedding_model(
    name: str = BACKBONE,
    embedding_dim: int = EMBEDDING_DIM,
    in_channels: int = 3,
    *,
    bn_momentum: float = 0.02,
) -> nn.Module:
    """A registry U-Net (`name`) mapping [M, in_channels] voxel features to [M, embedding_dim].

    `bn_momentum` is the batch norms' running-average momentum (the original's 0.02 suits 60k
    iterations; a run of a few hundred steps needs ~0.1, or the evaluation-mode statistics are
    still mostly their initial values and the embeddings collapse).
    """
    if embedding_dim < 1:
        raise InstanceInputError(f"embedding_dim must be >= 1, got {embedding_dim}")
    return build_model(name, in_channels, embedding_dim, bn_momentum=bn_momentum)


def init_from_semantic(
    model: nn.Module, semantic_checkpoint: str | os.PathLike[str], *, min_fraction: float = 0.9
) -> LoadReport:
    """Copy every weight of a semantic checkpoint except its classification head into `model`.

    Raises (stseg-models' `CheckpointMismatchError`) when under `min_fraction` of the parameters
    would load: another backbone, or not a checkpoint of this network.
    """
    ckpt = read_checkpoint(semantic_checkpoint)
    body = {k: v for k, v in ckpt.state_dict.items() if not k.startswith(HEAD_PREFIX)}
    return load_weights(
        model, body, strict=False, min_fraction=min_fraction, where=str(semantic_checkpoint)
    )


def instance_inference_spec(
    embedding_dim: int, voxel_size: float = VOXEL_SIZE, *, background_head: bool = False
) -> InferenceSpec:
    """stseg-models metadata for an embedding network (outputs named embedding_0.., then
    `BACKGROUND_OUTPUT` with a background head)."""
    names = [f"embedding_{i}" for i in range(embedding_dim)]
    return InferenceSpec(
        class_names=names + ([BACKGROUND_OUTPUT] if background_head else []),
        voxel_size=voxel_size,
        dataset="scannet",
        label_ids=None,
    )


def save_instance_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    voxel_size: float = VOXEL_SIZE,
    background_head: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write an instance checkpoint (atomic) readable by `load_instance_model`."""
    outputs = int(model.model_args["out_channels"])  # type: ignore[index]
    dim = outputs - int(background_head)
    save_checkpoint(
        path,
        model,
        instance_inference_spec(dim, voxel_size, background_head=background_head),
        extra={"ssen": {"embedding_dim": dim, "background_head": background_head, **(extra or {})}},
    )


def embedding_outputs(spec: InferenceSpec) -> tuple[int, bool]:
    """(embedding size, whether a background logit follows) of an instance network's spec."""
    names = list(spec.class_names)
    head = bool(names) and names[-1] == BACKGROUND_OUTPUT
    dim = len(names) - int(head)
    if dim < 1 or not all(name.startswith("embedding_") for name in names[:dim]):
        raise InstanceInputError(
            f"not an instance (embedding) network: its outputs are {', '.join(names[:3])}, ..."
        )
    return dim, head


def load_instance_model(path: str | os.PathLike[str]) -> tuple[nn.Module, InferenceSpec]:
    """(embedding network in eval mode, its inference spec) from an instance checkpoint.

    Accepts our own checkpoints and a trainer checkpoint of stseg-train (`state_dict` plus
    `model_args`).
    """
    ckpt = read_checkpoint(path)
    if ckpt.inference is None:
        payload = read_checkpoint_file(path)  # a trainer checkpoint keeps its model_args here
        args = payload.get("model_args") if isinstance(payload, dict) else None
        if not args:
            raise InstanceInputError(
                f"{path}: no model arguments in this file; pass a checkpoint written by "
                "`ssen-instance train`"
            )
        model = build_model(**args)
        load_weights(model, ckpt.state_dict, strict=True, where=str(path))
        # the run's voxel size (a recipe may differ from SSEN's 2 cm)
        config = payload.get("config") or {}
        voxel_size = float(config.get("voxel_size", VOXEL_SIZE))
        # the run's SSEN settings: `task_options` (`ssen_instance.train.SsenOptions`); runs
        # written before the config had typed sections kept them in `extra`
        section = config.get("task_options") or config.get("extra") or {}
        head = bool(section.get("background_head", False))
        spec = instance_inference_spec(
            int(args["out_channels"]) - int(head), voxel_size, background_head=head
        )
        return model.eval(), spec
    model, _ = ckpt.build(strict=True)
    return model, ckpt.inference


def forward_sparse(model: nn.Module, coords: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Run a registry network on one batch: coords int32 [M, 1+3] (batch first), features [M, C].

    Returns the output features [M, out] in the row order of `coords`.
    """
    # the sparse engine the model was built with (native or MinkowskiEngine); `model` may be the
    # DistributedDataParallel wrapper stseg-train's trainer runs (its network is `.module`)
    me: Any = getattr(model, "module", model)._me
    out = model(me.SparseTensor(features, coords))
    return out.F
