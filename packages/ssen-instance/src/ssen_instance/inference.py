"""SSEN inference on one scene, stage by stage (each timed).

1. semantic pass: the semantic network on 2 cm voxels (optionally averaged over rotations about
   the upright axis) -> a class per point;
2. background removal: voxels predicted wall / floor (or ignore) are dropped;
3. embedding pass: the instance network on the remaining voxels -> an embedding per voxel;
4. clustering (`ssen_instance.grouping`) -> `Instances` over every original point.
Export is `ssen_instance.export.write_scannet_instances`.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ssen_instance.errors import InstanceInputError
from ssen_instance.grouping import GroupingConfig, group_instances
from ssen_instance.instances import Instances
from ssen_instance.model import embedding_outputs, forward_sparse, load_instance_model
from stseg_data.labels import IGNORE_LABEL, SCANNET_INSTANCE_CLASS_IDS
from stseg_data.voxelize import Voxelized, voxelize
from stseg_models.checkpoint import InferenceSpec, read_checkpoint
from stseg_models.errors import PredictInputError
from stseg_models.precision import autocast_dtype, precision_context


@dataclass
class StageTimes:
    """Seconds spent per stage of one scene."""

    semantic: float = 0.0
    embedding: float = 0.0
    clustering: float = 0.0
    export: float = 0.0

    @property
    def total(self) -> float:
        return self.semantic + self.embedding + self.clustering + self.export


@dataclass
class ScenePrediction:
    """semantic: int64 [N] training ids per point; instances over the N points (training ids)."""

    semantic: np.ndarray
    instances: Instances
    times: StageTimes = field(default_factory=StageTimes)


def voxel_features(rgb: np.ndarray | None, spec: InferenceSpec, n: int) -> np.ndarray:
    """float32 [N, C] network input features from colours in [0, 1] as `spec` says."""
    if spec.features == "none":
        return np.ones((n, 1), dtype=np.float32)
    if rgb is None:
        raise InstanceInputError("the model expects 3 colour channels but the scene has no colour")
    return (np.asarray(rgb, np.float32) * spec.color_scale + spec.color_offset).astype(np.float32)


def _rotate_z(xyz: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return xyz @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _batched(coords: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([np.zeros((len(coords), 1), np.int32), coords], 1))


def _grid(xyz: np.ndarray, voxel_size: float, vox: Voxelized | None) -> Voxelized:
    """The voxelization of `xyz` at `voxel_size`: `vox` when the caller already made it."""
    if vox is None:
        return voxelize(xyz, voxel_size)
    if len(vox.inverse) != len(xyz):
        raise InstanceInputError(
            f"the given voxelization covers {len(vox.inverse)} points, the scene has {len(xyz)}"
        )
    return vox


@torch.no_grad()
def semantic_pass(
    model: nn.Module,
    spec: InferenceSpec,
    xyz: np.ndarray,
    rgb: np.ndarray | None,
    *,
    rotations: int = 1,
    device: str = "cpu",
    vox: Voxelized | None = None,
) -> np.ndarray:
    """int64 [N] predicted training ids: softmax averaged over `rotations` turns about z.

    `vox`: the scene's voxelization at `spec.voxel_size` when already made (used when
    `rotations` is 1), so that the semantic and the embedding pass voxelize only once.
    """
    if rotations < 1:
        raise InstanceInputError(f"rotations must be >= 1, got {rotations}")
    feats = voxel_features(rgb, spec, len(xyz))
    if rotations == 1:
        grid = _grid(xyz, spec.voxel_size, vox)
        out = forward_sparse(
            model, _batched(grid.coords).to(device), torch.from_numpy(feats[grid.index]).to(device)
        )
        # the argmax of one pass needs no softmax, and is taken per voxel, not per point
        return out.argmax(dim=1).cpu().numpy().astype(np.int64)[grid.inverse]
    probs = None
    for r in range(rotations):
        grid = voxelize(_rotate_z(xyz, 2 * math.pi * r / rotations), spec.voxel_size)
        out = forward_sparse(
            model, _batched(grid.coords).to(device), torch.from_numpy(feats[grid.index]).to(device)
        )
        p = torch.softmax(out.float(), dim=1).cpu().numpy()[grid.inverse]
        probs = p if probs is None else probs + p
    assert probs is not None
    return probs.argmax(axis=1).astype(np.int64)


@torch.no_grad()
def embedding_pass(
    model: nn.Module,
    spec: InferenceSpec,
    xyz: np.ndarray,
    rgb: np.ndarray | None,
    point_semantic: np.ndarray,
    *,
    instance_classes: tuple[int, ...] = SCANNET_INSTANCE_CLASS_IDS,
    device: str = "cpu",
    vox: Voxelized | None = None,
    background_head: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Embed the foreground: (embeddings [M, D], semantic [M], point->voxel [N], coords [M, 3]).

    Voxels whose representative point is not predicted as an instance class get no embedding
    (zeros) and are skipped by the clustering. With a network that has a background head
    (`ssen_instance.model`) and `background_head`, the voxels it calls background (logit > 0)
    are removed too: their semantic becomes IGNORE_LABEL. `vox`: the scene's voxelization at
    `spec.voxel_size` when already made (by the semantic pass).
    """
    vox = _grid(xyz, spec.voxel_size, vox)
    features = voxel_features(rgb, spec, len(xyz))[vox.index]
    voxel_sem = np.asarray(point_semantic, np.int64)[vox.index]
    fg = np.isin(voxel_sem, np.asarray(instance_classes))
    dim, has_head = embedding_outputs(spec)
    emb = np.zeros((len(vox), dim), dtype=np.float32)
    if fg.any():
        out = forward_sparse(
            model,
            _batched(vox.coords[fg]).to(device),
            torch.from_numpy(features[fg]).to(device),
        )
        values = out.float().cpu().numpy()
        emb[fg] = values[:, :dim]
        if has_head and background_head:
            # voxel_sem is already this function's own array (fancy indexing copies)
            voxel_sem[np.flatnonzero(fg)[values[:, dim] > 0.0]] = IGNORE_LABEL
    return emb, voxel_sem, vox.inverse, vox.coords


class InstanceSegmenter:
    """A semantic network and an embedding network, and how to cluster."""

    def __init__(
        self,
        semantic_model: nn.Module | None,
        semantic_spec: InferenceSpec | None,
        embedding_model: nn.Module,
        embedding_spec: InferenceSpec,
        grouping: GroupingConfig | None = None,
        *,
        rotations: int = 1,
        device: str = "cpu",
        precision: str = "fp32",
    ) -> None:
        try:
            autocast_dtype(precision)
        except PredictInputError as error:
            raise InstanceInputError(str(error)) from None
        self.precision = precision  # both networks' forward: fp32, or bf16 / fp16 autocast
        self.semantic_model = None if semantic_model is None else semantic_model.eval().to(device)
        self.semantic_spec = semantic_spec
        self.embedding_model = embedding_model.eval().to(device)
        self.embedding_spec = embedding_spec
        self.grouping = grouping or GroupingConfig()
        self.rotations = rotations
        self.device = device

    @classmethod
    def from_checkpoints(
        cls,
        semantic: str | os.PathLike[str] | None,
        instance: str | os.PathLike[str],
        grouping: GroupingConfig | None = None,
        *,
        rotations: int = 1,
        device: str = "cpu",
        precision: str = "fp32",
    ) -> InstanceSegmenter:
        emb_model, emb_spec = load_instance_model(instance)
        try:
            embedding_outputs(emb_spec)
        except InstanceInputError:
            raise InstanceInputError(
                f"{instance}: not an instance (embedding) checkpoint; its outputs are classes "
                f"({', '.join(emb_spec.class_names[:3])}, ...)"
            ) from None
        if semantic is None:  # semantics come with every scene (predict(..., semantic=...))
            return cls(None, None, emb_model, emb_spec, grouping, rotations=rotations,
                       device=device, precision=precision)  # fmt: skip
        ckpt = read_checkpoint(semantic)
        if ckpt.inference is None:
            raise InstanceInputError(
                f"{semantic}: an original model-zoo file without inference settings; convert it "
                "with `stseg-models convert` first"
            )
        if len(ckpt.inference.class_names) != 20:
            raise InstanceInputError(
                f"{semantic}: a semantic checkpoint must have the 20 ScanNet classes, this one has "
                f"{len(ckpt.inference.class_names)} outputs ({', '.join(ckpt.inference.class_names[:3])}, ...)"
            )
        sem_model, _ = ckpt.build(strict=True)
        return cls(
            sem_model,
            ckpt.inference,
            emb_model,
            emb_spec,
            grouping,
            rotations=rotations,
            device=device,
            precision=precision,
        )

    def _shared_grid(self) -> bool:
        """Whether both passes use the same voxel size (then the scene is voxelized once)."""
        if self.semantic_spec is None:
            return True
        return math.isclose(self.semantic_spec.voxel_size, self.embedding_spec.voxel_size)

    def predict(
        self,
        xyz: np.ndarray,
        rgb: np.ndarray | None,
        semantic: np.ndarray | None = None,
        *,
        background_head: bool | None = None,
    ) -> ScenePrediction:
        """Instances of one scene; `semantic` [N] skips the semantic pass (e.g. ground truth).

        background_head: whether the embedding network's background head (if it has one)
        removes background voxels; None: only when the semantics are predicted here (ground
        truth given as `semantic` is taken as it is).
        """
        use_head = semantic is None if background_head is None else background_head
        times = StageTimes()
        tic = time.perf_counter()
        vox = None
        if semantic is None and self.rotations == 1 and self._shared_grid():
            # one voxelization for both passes (same voxel size): counted in the semantic stage
            vox = voxelize(xyz, self.embedding_spec.voxel_size)
        if semantic is None:
            if self.semantic_model is None or self.semantic_spec is None:
                raise InstanceInputError(
                    "no semantic checkpoint: pass --semantic-weights or use stored semantics"
                )
            with precision_context(torch.device(self.device), self.precision):
                semantic = semantic_pass(
                    self.semantic_model,
                    self.semantic_spec,
                    xyz,
                    rgb,
                    rotations=self.rotations,
                    device=self.device,
                    vox=vox,
                )
        times.semantic = time.perf_counter() - tic
        tic = time.perf_counter()
        with precision_context(torch.device(self.device), self.precision):
            emb, voxel_sem, inverse, coords = embedding_pass(
                self.embedding_model,
                self.embedding_spec,
                xyz,
                rgb,
                semantic,
                instance_classes=self.grouping.instance_classes,
                device=self.device,
                vox=vox,
                background_head=use_head,
            )
        times.embedding = time.perf_counter() - tic
        tic = time.perf_counter()
        instances = group_instances(emb, voxel_sem, inverse, self.grouping, coords)
        times.clustering = time.perf_counter() - tic
        return ScenePrediction(np.asarray(semantic, np.int64), instances, times)
