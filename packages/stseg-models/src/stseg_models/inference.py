"""`Segmenter`: per-point semantic labels for a point cloud from one checkpoint.

    seg = Segmenter.from_checkpoint("scannet.pt", device="cpu")
    labels, probabilities = seg.predict(xyz, rgb)   # int64 [N], float32 [N, C]
    labels, _ = seg4d.predict(xyz, rgb, time=frame) # 4D networks: frame index per point

Per rotation: centre the cloud horizontally (float64; heights are kept), rotate it about the upright (z) axis, voxelize it
(`stseg_data.voxelize`: first point's colour per voxel), run the network on the voxels and add the
voxel logits to every point through the inverse map. Logits are averaged over rotations, then
turned into probabilities. Only one [N, C] float32 accumulator lives at a time (plus the network's
activations), and points are scattered in chunks, so clouds of millions of points fit in memory.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from stseg_data.cli_support import is_out_of_memory, out_of_memory_line
from stseg_data.errors import StsegError
from stseg_models.checkpoint import Checkpoint, InferenceSpec, dataset_preset, infer_model_args
from stseg_models.errors import CheckpointError, PredictInputError, PredictRuntimeError
from stseg_models.precision import autocast_dtype, precision_context

#: points handled per scatter step when adding voxel logits to points
POINT_CHUNK = 1 << 20


def rotation_z(angle: float) -> np.ndarray:
    """3x3 float64 rotation by `angle` radians about the z (upright) axis."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def validate_cloud(
    xyz: np.ndarray, rgb: np.ndarray | None, spec: InferenceSpec, fill_color: tuple | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Checked float64 xyz [N, 3] and float32 rgb [N, 3] in [0, 1] (or None for colour-free models)."""
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise PredictInputError(f"xyz must have shape [N, 3], got {list(xyz.shape)}")
    if xyz.shape[0] == 0:
        raise PredictInputError("the point cloud has 0 points; nothing to segment")
    xyz = xyz.astype(np.float64, copy=False)
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise PredictInputError(
            f"{bad.size} points have non-finite coordinates (first at index {int(bad[0])})"
        )
    if spec.features == "none":
        return xyz, None
    if rgb is None:
        if fill_color is None:
            raise PredictInputError(
                "the model expects 3 colour channels (rgb) but the point cloud has no colour; "
                "pass fill_color (CLI: --fill-color R,G,B in [0,1]) to use a constant colour, or "
                "use a checkpoint trained without colour"
            )
        rgb = np.broadcast_to(np.asarray(fill_color, dtype=np.float32), xyz.shape)
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.shape != xyz.shape:
        raise PredictInputError(f"rgb has shape {list(rgb.shape)}, expected {list(xyz.shape)}")
    if not np.isfinite(rgb).all() or rgb.min() < 0.0 or rgb.max() > 1.0:
        raise PredictInputError("rgb must be finite and in [0, 1] (divide 8-bit colours by 255)")
    return xyz, rgb


def resolve_device(device: str | torch.device) -> torch.device:
    """A usable torch device, or `PredictInputError` (unknown name, CUDA not available)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise PredictInputError(f"unknown device {device!r} ({error})") from error
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PredictInputError(f"device {device!r} requested but CUDA is not available here")
    return dev


def output_rows(output_coords: torch.Tensor, input_coords: torch.Tensor) -> torch.Tensor | None:
    """Row of the output for each input voxel, or None when the backend kept the input order."""
    if torch.equal(output_coords, input_coords):
        return None

    # a backend may reorder rows: match them through a lexicographic sort of both sets
    def order(c: torch.Tensor) -> torch.Tensor:
        c = c.to(torch.int64) - c.min(0).values
        key = torch.zeros(len(c), dtype=torch.int64)
        for col in range(c.shape[1]):
            key = key * (int(c[:, col].max()) + 1) + c[:, col]
        return torch.argsort(key)

    out_order, in_order = order(output_coords.cpu()), order(input_coords.cpu())
    rows = torch.empty_like(in_order)
    rows[in_order] = out_order
    if not torch.equal(output_coords.cpu()[rows], input_coords.cpu()):
        raise PredictRuntimeError("the network output lives on other coordinates than its input")
    return rows


@dataclass
class Segmenter:
    """A network in eval mode plus the `InferenceSpec` that says how to feed it."""

    model: nn.Module
    spec: InferenceSpec
    device: torch.device
    precision: str = (
        "fp32"  # fp32 | bf16 | fp16 (`stseg_models.precision`): autocast of the forward
    )

    def __post_init__(self) -> None:
        autocast_dtype(self.precision)  # a bad name fails here, not at the first cloud

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "cpu",
        *,
        backend: str | None = None,
        model_name: str | None = None,
        dataset: str | None = None,
        precision: str = "fp32",
    ) -> Segmenter:
        """Load an stseg checkpoint (or an original model-zoo file with `model_name` and
        `dataset` naming its network and inference preset), strictly, onto `device`; the forward
        runs in `precision` (fp32, or bf16 / fp16 autocast)."""
        from stseg_models.checkpoint import read_checkpoint
        from stseg_models.weights import load_weights
        from stseg_models.zoo import build_model

        dev = resolve_device(device)
        ckpt: Checkpoint = read_checkpoint(path)
        spec = ckpt.inference
        args = dict(ckpt.model_args)
        if spec is None:
            name = model_name or args.get("name")
            if not (name and dataset):
                raise CheckpointError(
                    f"{path}: an original checkpoint without stseg metadata; give the model name "
                    "and dataset preset (CLI: --model NAME --dataset scannet|s3dis|synthia4d)"
                )
            args = infer_model_args(ckpt.state_dict, name)
            spec = dataset_preset(dataset, args["out_channels"])
        build_args = {k: args[k] for k in ("name", "in_channels", "out_channels")}
        build_args |= {k: args[k] for k in ("conv1_kernel_size", "dimension") if k in args}
        if build_args["in_channels"] != spec.in_channels:
            raise CheckpointError(
                f"{path}: model takes {build_args['in_channels']} input channels but its "
                f"inference features {spec.features!r} give {spec.in_channels}"
            )
        model = build_model(**build_args, backend=backend)
        load_weights(model, ckpt.state_dict, strict=True, where=str(path))
        return cls(model.to(dev).eval(), spec, dev, precision)

    @property
    def num_classes(self) -> int:
        return len(self.spec.class_names)

    @property
    def dimension(self) -> int:
        """3 (space) or 4 (space + time: `predict` then needs each point's frame index)."""
        return int(cast(Any, self.model).D)

    def _voxel_logits(self, xyz: np.ndarray, rgb: np.ndarray | None):
        from stseg_data.voxelize import voxelize

        # 4D: the frame index is the last coordinate, with voxel size 1 along time
        vox = voxelize(xyz, self.spec.voxel_size, features=rgb)
        coords = torch.from_numpy(np.ascontiguousarray(vox.coords, dtype=np.int32))
        if rgb is None:
            feats = torch.ones(len(coords), 1)
        else:
            assert vox.features is not None
            feats = torch.from_numpy(vox.features.astype(np.float32))
            feats = feats * self.spec.color_scale + self.spec.color_offset
        batch = torch.zeros(len(coords), 1, dtype=torch.int32)
        me = cast(Any, self.model)._me  # the sparse backend the network was built with
        field_coords = torch.cat([batch, coords], 1).to(self.device)
        x = me.SparseTensor(feats.to(self.device), coordinates=field_coords)
        with precision_context(self.device, self.precision):
            out = self.model(x)
        rows = output_rows(out.C, field_coords)
        logits = out.F if rows is None else out.F[rows.to(out.F.device)]
        return logits.float().cpu(), torch.from_numpy(vox.inverse)

    def _frames(self, time: np.ndarray | None, n: int) -> np.ndarray | None:
        """Checked float64 [N] frame indices for a 4D network; None for a 3D one."""
        if self.dimension == 3:
            if time is not None:
                raise PredictInputError("time given, but the network is 3D (space only)")
            return None
        if time is None:
            raise PredictInputError(
                f"the network is {self.dimension}D (space + time): pass time, the frame index "
                "of every point"
            )
        frames = np.asarray(time)
        if frames.shape != (n,) or frames.dtype.kind not in "iu":
            raise PredictInputError(f"time must be integer frame indices of shape [{n}]")
        return frames.astype(np.float64)

    @torch.inference_mode()
    def predict(
        self,
        xyz: np.ndarray,
        rgb: np.ndarray | None = None,
        *,
        rotations: int = 1,
        fill_color: tuple[float, float, float] | None = None,
        time: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels int64 [N] (0..C-1) and probabilities float32 [N, C] for xyz [N, 3], rgb [N, 3].

        `rotations` > 1 averages the logits of that many rotations about z (2*pi*k/rotations).
        4D (space + time) networks also need `time`: int [N] frame index of every point.
        Running out of memory (CPU or GPU) raises `PredictRuntimeError` naming the allocation.
        """
        if not (isinstance(rotations, int) and rotations >= 1):
            raise PredictInputError(f"rotations must be a positive integer, got {rotations!r}")
        try:
            return self._predict(xyz, rgb, rotations, fill_color, time)
        except (MemoryError, RuntimeError) as error:
            # numpy's MemoryError, torch's CPU allocator ("DefaultCPUAllocator: not enough
            # memory") and CUDA's OutOfMemoryError all end here as one typed error naming the size
            if isinstance(error, StsegError) or not is_out_of_memory(error):
                raise
            n = len(xyz)
            raise PredictRuntimeError(
                f"{n} points, {rotations} rotation(s) on {self.device}: {out_of_memory_line(error)}"
            ) from None

    def _predict(
        self,
        xyz: np.ndarray,
        rgb: np.ndarray | None,
        rotations: int,
        fill_color: tuple[float, float, float] | None,
        time: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        xyz, rgb = validate_cloud(xyz, rgb, self.spec, fill_color)
        frames = self._frames(time, len(xyz))
        # centre horizontally only: training never translates along the upright axis (the
        # original's translation bounds are 0 on z), so the network reads heights above the floor
        # through the grid's vertical phase; shifting z as well costs ~10 points of accuracy
        centred = xyz.copy()
        centred[:, :2] -= xyz[:, :2].mean(axis=0)
        n = len(xyz)
        acc = torch.zeros(n, self.num_classes, dtype=torch.float32)
        for k in range(rotations):
            points = centred if k == 0 else centred @ rotation_z(2 * math.pi * k / rotations).T
            if frames is not None:
                points = np.hstack([points, frames[:, None]])
            logits, inverse = self._voxel_logits(points, rgb)
            for start in range(0, n, POINT_CHUNK):
                stop = min(start + POINT_CHUNK, n)
                acc[start:stop] += logits.index_select(0, inverse[start:stop])
        if rotations > 1:
            acc /= rotations
        labels = torch.empty(n, dtype=torch.int64)
        for start in range(0, n, POINT_CHUNK):  # softmax in place, chunk by chunk
            block = acc[start : start + POINT_CHUNK]
            labels[start : start + POINT_CHUNK] = block.argmax(1)
            block.copy_(torch.softmax(block, dim=1))
        if len(labels) != n:
            raise PredictRuntimeError(f"{len(labels)} predictions for {n} points")
        return labels.numpy(), acc.numpy()
