"""Jobs on a trained checkpoint: `evaluate_checkpoint` (eval_<split>.json) and `export_benchmark`
(the ScanNet semantic-segmentation submission: one `<scene>.txt` of NYU40 ids per vertex)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from stseg_data.atomic import atomic_write
from stseg_data.outputs import check_writable, refuse_existing
from stseg_train.checkpoint import load_checkpoint
from stseg_train.components import sparse_forward
from stseg_train.config import config_from_dict
from stseg_train.data import SceneSamples, split_items
from stseg_train.errors import CheckpointError, TrainInputError
from stseg_train.evaluate import evaluate_scenes, scene_logits
from stseg_train.metrics import format_table


def resolve_checkpoint(target: str | Path) -> Path:
    """A checkpoint file, or a run directory's best (else final, else newest periodic) one."""
    path = Path(target)
    if path.is_file():
        return path
    folder = path / "checkpoints"
    if not folder.is_dir():
        raise CheckpointError(f"{path}: neither a checkpoint file nor a run directory")
    for name in ("best.pth", "final.pth"):
        if (folder / name).is_file():
            return folder / name
    periodic = sorted(folder.glob("iter_*.pth"))
    if not periodic:
        raise CheckpointError(f"{path}: run has no checkpoint yet")
    return periodic[-1]


def load_trained(target: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, Any, Path]:
    """(model in eval mode on `device`, its training config, checkpoint path) from a stseg-train
    checkpoint."""
    from stseg_models import build_model

    path = resolve_checkpoint(target)
    payload = load_checkpoint(path)
    config = config_from_dict(payload["config"], f"{path}: saved config")
    args = payload["model_args"]
    model = build_model(
        args["name"],
        args["in_channels"],
        args["out_channels"],
        conv1_kernel_size=args.get("conv1_kernel_size"),
        dimension=args.get("dimension"),
        bn_momentum=args.get("bn_momentum", 0.02),
    )
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), config, path


def _precision(precision: str, device: str) -> Any:
    """The autocast context of `precision` on `device`; `TrainInputError` for an unknown name."""
    from stseg_models.errors import PredictInputError
    from stseg_models.precision import precision_context

    try:
        return precision_context(torch.device(device), precision)
    except PredictInputError as error:
        raise TrainInputError(f"--precision: {error}") from None


def eval_output_path(target: str | Path, split: str, out: str | Path | None) -> Path:
    """Where `eval` writes: `eval_<split>.json` in the run (beside a checkpoint file), in folder
    `out`, or `out` itself when it names a `.json` file. Never the run's own metrics.json."""
    name = f"eval_{split.replace('/', '_')}.json"
    if out is not None:
        out = Path(out)
        return out if out.suffix == ".json" else out / name
    target = Path(target)
    return (target if target.is_dir() else target.parent) / name


def evaluate_checkpoint(
    target: str | Path,
    data: str | Path,
    *,
    split: str = "val",
    rotations: int = 1,
    out: str | Path | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    precision: str = "fp32",
) -> dict[str, Any]:
    """Metrics of a checkpoint on a split, written to `eval_output_path(target, split, out)`; the
    network runs on `device` (cpu, cuda, cuda:N) in `precision` (fp32, or bf16 / fp16 autocast).

    The output is checked first (an existing file is refused unless `overwrite`; the folder must
    be writable), so a refusal comes before the evaluation, not after it.
    """
    if rotations < 1:
        raise TrainInputError(f"--rotations must be >= 1, got {rotations}")
    arithmetic = _precision(precision, device)
    out_path = eval_output_path(target, split, out)
    refuse_existing(out_path, overwrite)
    check_writable(out_path.parent)
    model, config, path = load_trained(target, device)
    config = dataclasses.replace(config, data=str(data))
    samples = SceneSamples(split_items(config, split), config, train=False)
    with arithmetic:
        summary = evaluate_scenes(model, sparse_forward, samples, rotations=rotations)
    summary = {"checkpoint": str(path), "split": split, "precision": precision, **summary}
    with atomic_write(out_path, "w", overwrite=overwrite) as handle:
        json.dump(summary, handle, indent=2)
    summary["table"] = format_table(summary)
    summary["written"] = str(out_path)
    return summary


def export_benchmark(
    target: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    split: str = "test",
    rotations: int = 1,
    overwrite: bool = False,
    device: str = "cpu",
    precision: str = "fp32",
) -> list[Path]:
    """Write `<out>/<scene>.txt` (NYU40 id per vertex, ScanNet benchmark format) for each scene;
    the network runs in `precision` (fp32, or bf16 / fp16 autocast)."""
    from stseg_data.labels import scannet20_to_nyu40

    arithmetic = _precision(precision, device)
    # The output first: a non-empty --out is refused and an unwritable one found before the
    # network runs over every scene.
    refuse_existing(out, overwrite)
    check_writable(out)
    model, config, _ = load_trained(target, device)
    if config.num_classes != 20 or config.dataset not in ("scannet", "synthetic"):
        raise TrainInputError(
            f"export-benchmark writes ScanNet's 20-class submission; this checkpoint is "
            f"{config.dataset} with {config.num_classes} classes"
        )
    config = dataclasses.replace(config, data=str(data))
    root = Path(data)
    if (root / f"{split}.txt").is_file():
        items: list[Any] = split_items(config, split)
    else:  # `stseg-data preprocess` puts scans_test under test/ without a split list
        items = sorted((root / split).glob("*.ply"))
        if not items:
            raise TrainInputError(f"--data {root}: no {split}.txt and no {split}/*.ply scenes")
    samples = SceneSamples(
        items,
        dataclasses.replace(
            config, runtime=dataclasses.replace(config.runtime, cache_scenes=False)
        ),
        train=False,
        require_labels=False,
    )
    written = []
    for index in range(len(samples)):
        cloud = samples.cloud(index)
        with arithmetic:
            logits, _ = scene_logits(model, sparse_forward, cloud, samples, rotations)
        ids = scannet20_to_nyu40(logits.argmax(1))
        path = Path(out) / f"{samples.name(index)}.txt"
        with atomic_write(path, "w", overwrite=overwrite) as handle:
            handle.write("\n".join(str(int(v)) for v in ids) + "\n")
        written.append(path)
    return written
