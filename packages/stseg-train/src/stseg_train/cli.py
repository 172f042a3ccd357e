"""The `stseg-train` command line: a thin Click layer over the library.

    stseg-train scannet|s3dis|synthia4d --data PREPARED [--model NAME] [--gpus N | --procs N]
        [--weights W] [--resume RUN] [--max-iter I] [--batch-size B] [--voxel-size V] [--out RUN]
        [--threads N] [--config FILE] [--set key=value ...]
    stseg-train synthetic [--out runs/synthetic] [...]   the main job on generated data
    stseg-train eval CHECKPOINT|RUN --data PREPARED [--rotations N] [--split val] [--out DIR|FILE]
        [--overwrite] [--device cpu|cuda|cuda:N] [--threads N]   writes eval_<split>.json
    stseg-train export-benchmark CHECKPOINT|RUN --data PREPARED --out DIR [--overwrite]
        [--device cpu|cuda|cuda:N] [--threads N]

Exit codes: 0 success, 2 bad input, 1 runtime failure, 3 stopped on non-finite values,
4 stopped by SIGTERM after writing a checkpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from stseg_data.cli_options import (
    device_option,
    out_option,
    overwrite_option,
    precision_option,
    resume_option,
    rotations_option,
    threads_option,
)
from stseg_data.cli_support import StsegGroup
from stseg_train import __version__


@click.group(cls=StsegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stseg-train")
def main() -> None:
    """stseg-train: train, resume, evaluate and export sparse U-Nets. See `COMMAND --help`."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")


def _training_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--data", type=click.Path(), default=None,
                     help="Preprocessed dataset folder (stseg-data preprocess) with train.txt/val.txt."),
        click.option("--model", default=None, help="Network name (stseg-models list)."),
        click.option("--gpus", type=int, default=0, help="Train on N GPUs (N processes, NCCL)."),
        click.option("--procs", type=int, default=0, help="Train in N CPU processes (gloo)."),
        click.option("--weights", type=click.Path(), default=None,
                     help="Initial weights (ours or the original model zoo), loaded leniently."),
        resume_option,
        click.option("--restart-from-scratch", is_flag=True,
                     help="With --resume: start over when no checkpoint of the run is valid."),
        click.option("--max-iter", type=int, default=None, help="Optimizer steps in total."),
        click.option("--batch-size", type=int, default=None, help="Scenes per step per process."),
        click.option("--voxel-size", type=float, default=None, help="Voxel size (dataset units)."),
        precision_option(default=None),
        # recorded as the config's `threads` (spawned processes and --resume use it too)
        threads_option(default="the config's threads; 0 there = cores / processes", expose=True),
        out_option("Run folder (must not exist; default runs/<command>)."),
        click.option("--config", "config_file", type=click.Path(), default=None,
                     help="YAML, TOML or JSON file of config keys."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override any config key (repeatable), e.g. --set lr=0.05 or "
                          "--set runtime.device=cpu."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _make_train_command(dataset: str) -> click.Command:
    @click.command(name=dataset)
    @_training_options
    def command(**kwargs: Any) -> None:
        from stseg_train.launch import train_command

        if kwargs["out"] is not None:
            kwargs["out"] = str(kwargs["out"])
        result = train_command(dataset, **kwargs)
        click.echo(json.dumps(result, indent=2))

    command.help = {
        "scannet": "Train on preprocessed ScanNet v2 (Res16UNet34C, 2 cm, the original recipe).",
        "s3dis": "Train on preprocessed S3DIS (Res16UNet18, 5 cm, colour + coordinates).",
        "synthia4d": "Train a 4D network on Synthia4D temporal windows.",
        "synthetic": "The main job: generate synthetic ScanNet scenes, preprocess, train on the "
        "CPU (~10 min), evaluate, and predict one held-out scene.",
    }[dataset]
    return command


for _dataset in ("scannet", "s3dis", "synthia4d", "synthetic"):
    main.add_command(_make_train_command(_dataset))


@main.command(name="eval")
@click.argument("target", type=click.Path())
@click.option("--data", type=click.Path(), required=True, help="Preprocessed dataset folder.")
@click.option("--split", default="val", show_default=True, help="Split list to evaluate.")
@rotations_option
@out_option("Folder for eval_<split>.json, or a .json file (default: eval_<split>.json in the run "
            "/ beside the checkpoint; the run's own metrics.json is never touched).")  # fmt: skip
@overwrite_option("Replace an existing eval_<split>.json.")
@device_option
@precision_option()
@threads_option()
def eval_command(
    target: str,
    data: str,
    split: str,
    rotations: int,
    out: Path | None,
    overwrite: bool,
    device: str,
    precision: str,
) -> None:
    """Per-class IoU, mIoU, mean and overall accuracy of CHECKPOINT|RUN (voxels and points)."""
    from stseg_train.jobs import evaluate_checkpoint

    summary = evaluate_checkpoint(
        target, data, split=split, rotations=rotations, out=out, overwrite=overwrite,
        device=device, precision=precision,
    )  # fmt: skip
    click.echo(summary["table"])
    click.echo(f"voxels: mIoU {summary['voxels']['miou']:.4f}; written {summary['written']}")


@main.command(name="export-benchmark")
@click.argument("target", type=click.Path())
@click.option("--data", type=click.Path(), required=True, help="Preprocessed dataset folder.")
@out_option("Folder for <scene>.txt files.", required=True)
@click.option(
    "--split", default="test", show_default=True, help="Split (list or folder) to export."
)
@rotations_option
@overwrite_option("Write into a non-empty --out, replacing existing <scene>.txt files.")
@device_option
@precision_option()
@threads_option()
def export_benchmark_command(
    target: str, data: str, out: Path, split: str, rotations: int, overwrite: bool, device: str,
    precision: str,
) -> None:  # fmt: skip
    """ScanNet semantic benchmark submission: one <scene>.txt of NYU40 ids per vertex."""
    from stseg_train.jobs import export_benchmark

    written = export_benchmark(
        target, data, out, split=split, rotations=rotations, overwrite=overwrite, device=device,
        precision=precision,
    )  # fmt: skip
    click.echo(f"wrote {len(written)} scene file(s) to {out}")
