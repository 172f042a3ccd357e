"""stseg checkpoints: weights plus everything inference needs, and original model-zoo files.

Our checkpoint (a `torch.save` dict or a `.safetensors` file) holds::

    {"format": "stseg-checkpoint", "schema_version": 1,
     "model": {"name", "in_channels", "out_channels", "conv1_kernel_size", "dimension", "bn_momentum"},
     "state_dict": {...},
     "inference": {"class_names", "dataset", "label_ids", "voxel_size", "features",
                   "color_scale", "color_offset", "ignore_label"},
     ...any extra entries (trainer state), ignored here}

so `Segmenter.from_checkpoint` needs nothing else. Original model-zoo files (a bare state dict or
``{"state_dict": ...}``) carry no such metadata: `convert_original` wraps them, inferring the class
count, input channels and first kernel from the tensor shapes and taking the rest from a dataset
preset (ScanNet: 2 cm voxels, colour as rgb - 0.5, NYU40 ids for export).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from stseg_models.checkpoint_io import (
    SAFETENSORS_SUFFIXES,
    read_checkpoint_file,
    write_safetensors_file,
    write_torch_file,
)
from stseg_models.errors import CheckpointError, CheckpointReadError
from stseg_models.weights import LoadReport, extract_state_dict, load_weights

FORMAT = "stseg-checkpoint"
SCHEMA_VERSION = 1
MODEL_ARG_KEYS = (
    "name",
    "in_channels",
    "out_channels",
    "conv1_kernel_size",
    "dimension",
    "bn_momentum",
)


@dataclass
class InferenceSpec:
    """How to turn a point cloud into the model's input, and its output into labels.

    class_names:  one name per output channel.
    dataset:      "scannet", "s3dis", "synthia4d" or None (decides export formats).
    label_ids:    dataset ids to write per class (ScanNet: NYU40 ids), or None for 0..C-1.
    voxel_size:   grid size in the cloud's units (metres for indoor data).
    features:     "rgb" (colour, 3 channels) or "none" (a constant 1, 1 channel).
    color_scale, color_offset: feature = rgb[0,1] * scale + offset (original: rgb/255 - 0.5).
    """

    class_names: list[str]
    voxel_size: float
    dataset: str | None = None
    label_ids: list[int] | None = None
    features: str = "rgb"
    color_scale: float = 1.0
    color_offset: float = -0.5
    ignore_label: int = 255

    def __post_init__(self) -> None:
        if self.features not in ("rgb", "none"):
            raise CheckpointError(
                f"inference.features must be 'rgb' or 'none', got {self.features!r}"
            )
        if not self.voxel_size > 0:
            raise CheckpointError(f"inference.voxel_size must be positive, got {self.voxel_size!r}")
        if self.label_ids is not None and len(self.label_ids) != len(self.class_names):
            raise CheckpointError("inference.label_ids must have one id per class name")

    @property
    def in_channels(self) -> int:
        return 3 if self.features == "rgb" else 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: model arguments, weights, inference spec (None for original files)."""

    model_args: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    inference: InferenceSpec | None
    extra: dict[str, Any] = field(default_factory=dict)

    def build(self, *, strict: bool = True) -> tuple[nn.Module, LoadReport]:
        """The model with these weights loaded (eval mode, CPU)."""
        from stseg_models.zoo import build_model

        args = {k: self.model_args[k] for k in MODEL_ARG_KEYS if k in self.model_args}
        model = build_model(**args)
        report = load_weights(model, self.state_dict, strict=strict, where=str(args.get("name")))
        return model.eval(), report


def dataset_preset(dataset: str, num_classes: int | None = None) -> InferenceSpec:
    """The original work's inference settings for "scannet", "s3dis" or "synthia4d"."""
    from stseg_data import labels

    presets = {
        "scannet": (labels.SCANNET_CLASS_NAMES, 0.02, list(labels.SCANNET_NYU40_IDS)),
        "s3dis": (labels.S3DIS_CLASS_NAMES, 0.05, None),
        "synthia4d": (labels.SYNTHIA_CLASS_NAMES, 15.0, None),  # centimetres: 15 cm voxels
    }
    if dataset not in presets:
        raise CheckpointError(f"unknown dataset {dataset!r}; expected one of {sorted(presets)}")
    names, voxel, ids = presets[dataset]
    if num_classes is not None and num_classes != len(names):
        raise CheckpointError(
            f"the {dataset} preset has {len(names)} classes but the weights have {num_classes}"
        )
    return InferenceSpec(class_names=list(names), voxel_size=voxel, dataset=dataset, label_ids=ids)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    inference: InferenceSpec,
    *,
    extra: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> None:
    """Write `model` (built by `build_model`) with its arguments and `inference` spec, atomically.

    A `.safetensors` path writes safetensors (weights + JSON metadata; `extra` must be JSON-able).
    """
    args = getattr(model, "model_args", None)
    if not args:
        raise CheckpointError("save_checkpoint needs a model made by stseg_models.build_model")
    if len(inference.class_names) != args["out_channels"]:
        raise CheckpointError(
            f"{len(inference.class_names)} class names for a model with {args['out_channels']} outputs"
        )
    meta = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "model": dict(args),
        "inference": asdict(inference),
        **(extra or {}),
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if str(path).endswith(SAFETENSORS_SUFFIXES):
        write_safetensors_file(path, state, meta, overwrite=overwrite)
    else:
        write_torch_file(path, {**meta, "state_dict": state}, overwrite=overwrite)


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load any supported checkpoint file (ours, original model zoo, .safetensors) safely."""
    payload = read_checkpoint_file(path)
    state = extract_state_dict(payload, str(path))
    if not (isinstance(payload, dict) and payload.get("format") == FORMAT):
        arch = payload.get("arch") if isinstance(payload, dict) else None
        return Checkpoint(
            model_args={"name": arch} if arch else {}, state_dict=state, inference=None
        )
    version = payload.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CheckpointReadError(
            f"{path}: checkpoint schema_version {version!r} is newer than this stseg-models "
            f"understands ({SCHEMA_VERSION}); upgrade stseg-models"
        )
    missing = [
        k for k in ("name", "in_channels", "out_channels") if k not in payload.get("model", {})
    ]
    if missing or not isinstance(payload.get("inference"), dict):
        raise CheckpointReadError(
            f"{path}: stseg checkpoint lacks model/inference fields {missing}"
        )
    try:
        inference = InferenceSpec(**payload["inference"])
    except TypeError as error:
        raise CheckpointReadError(f"{path}: bad inference metadata ({error})") from error
    known = {"format", "schema_version", "model", "inference", "state_dict"}
    extra = {k: v for k, v in payload.items() if k not in known}
    return Checkpoint(dict(payload["model"]), state, inference, extra)


def infer_model_args(state: dict[str, torch.Tensor], name: str) -> dict[str, Any]:
    """in/out channels and first kernel size of an original checkpoint, from tensor shapes."""
    from stseg_models.zoo import resolve

    canonical, spec = resolve(name)
    stem = "conv0p1s1.kernel" if spec.layout == "res16" else "conv1p1s1.kernel"
    stem = next((k for k in state if k.endswith(stem)), stem)
    head = next((k for k in state if k.endswith("final.kernel")), "final.kernel")
    if stem not in state or head not in state:
        raise CheckpointError(f"weights lack {stem!r} or {head!r}; are they a {canonical}?")
    kernel = state[stem]
    volume = kernel.shape[0] if kernel.dim() == 3 else 1
    spatial = round(volume ** (1 / 3))
    if spatial**3 != volume:
        raise CheckpointError(f"{stem} has {volume} kernel offsets, not a k^3 first convolution")
    return {
        "name": canonical,
        "in_channels": int(kernel.shape[-2]),
        "out_channels": int(state[head].shape[-1]),
        "conv1_kernel_size": spatial,
        "dimension": spec.dimension,
        "bn_momentum": 0.02,
    }


def convert_original(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    dataset: str = "scannet",
    inference: InferenceSpec | None = None,
    overwrite: bool = False,
) -> LoadReport:
    """Wrap an original model-zoo checkpoint as an stseg checkpoint (strict load as a check)."""
    from stseg_models.zoo import build_model

    ckpt = read_checkpoint(src)
    name = model_name or ckpt.model_args.get("name")
    if not name:
        raise CheckpointError(f"{src}: the file does not name its model; pass the model name")
    args = infer_model_args(ckpt.state_dict, name)
    spec = inference or dataset_preset(dataset, args["out_channels"])
    model = build_model(**args)
    report = load_weights(model, ckpt.state_dict, strict=True, where=str(src))
    save_checkpoint(dst, model, spec, extra={"converted_from": os.fspath(src)}, overwrite=overwrite)
    return report


def export_safetensors(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, overwrite: bool = False
) -> None:
    """Re-write an stseg checkpoint as `.safetensors` (weights and metadata, no pickle)."""
    ckpt = read_checkpoint(src)
    if ckpt.inference is None:
        raise CheckpointError(
            f"{src}: not an stseg checkpoint; convert it with convert_original first"
        )
    model, _ = ckpt.build(strict=True)
    save_checkpoint(dst, model, ckpt.inference, overwrite=overwrite)
