"""Prediction over files: what `stseg-models predict INPUT --weights W` does.

For every input scene (a `.ply` file, or every `.ply` in a folder) it writes, atomically:

* ``<stem>_pred.ply``: the points coloured by predicted class, with a per-vertex ``label``;
* with ``--format txt``: ``<scene>.txt``, one label per line (the ScanNet benchmark format: NYU40
  ids and the scene id without ``_vh_clean_2`` when the checkpoint is a ScanNet one);
* with ``--format npy``: ``<stem>.npy``, int64 labels.

Labels are the dataset's ids (`InferenceSpec.label_ids`, NYU40 for ScanNet) when the checkpoint has
them, else training ids 0..C-1. Existing outputs are refused without ``overwrite``, checked for
every output of a scene before any is written. ``keep_going`` records a failing scene and goes on;
the run then ends with an error summarising the failures (exit 2 if every failure was bad input).
Running out of memory on a scene is such a failure (exit 1, the size named), never a traceback.
Results already written are never removed. The output folder is checked writable before the model
is loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stseg_data.cli_support import out_of_memory_line
from stseg_data.errors import StsegError, StsegInputError
from stseg_data.outputs import check_writable
from stseg_models.errors import PredictInputError, PredictRuntimeError
from stseg_models.inference import Segmenter
from stseg_models.palette import colorize

FORMATS = ("ply", "txt", "npy")
INPUT_SUFFIXES = (".ply",)


@dataclass
class PredictOptions:
    """Knobs of a prediction run (see module docstring)."""

    out_dir: Path = Path("predictions")
    fmt: str = "ply"
    rotations: int = 1
    overwrite: bool = False
    keep_going: bool = False
    fill_color: tuple[float, float, float] | None = None
    precision: str = "fp32"  # fp32 | bf16 | fp16 autocast of the forward


@dataclass
class PredictSummary:
    """Outcome of a run: outputs per finished scene, and the error message of each failure."""

    written: dict[str, list[Path]] = field(default_factory=dict)
    failed: dict[str, StsegError] = field(default_factory=dict)

    def report(self) -> str:
        total = len(self.written) + len(self.failed)
        lines = [f"predicted {len(self.written)} of {total} scenes"]
        lines += [f"  failed: {error}" for error in self.failed.values()]
        return "\n".join(lines)


class PredictBatchError(StsegError):
    """Some scenes of a --keep-going run failed (the others' outputs are kept)."""


def find_inputs(path: str | os.PathLike[str]) -> list[Path]:
    """The scene files to predict: `path` itself, or the `.ply` files directly inside it."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES)
        files = [f for f in files if not f.stem.endswith("_pred")]
        if not files:
            raise PredictInputError(f"{p}: no .ply files in this folder")
        return files
    if not p.exists():
        raise PredictInputError(f"{p}: no such file or folder")
    if p.suffix.lower() not in INPUT_SUFFIXES:
        raise PredictInputError(f"{p}: expected a .ply file or a folder of them")
    return [p]


def scene_id(path: Path, dataset: str | None) -> str:
    """`scene0011_00` for ScanNet's `scene0011_00_vh_clean_2.ply`, else the file stem."""
    stem = path.stem
    if dataset == "scannet":
        for suffix in ("_vh_clean_2", "_vh_clean"):
            stem = stem.removesuffix(suffix)
    return stem


def output_paths(path: Path, opts: PredictOptions, dataset: str | None) -> list[Path]:
    """Every file a scene produces: the coloured PLY first, then the label file if any."""
    outputs = [opts.out_dir / f"{path.stem}_pred.ply"]
    if opts.fmt == "txt":
        outputs.append(opts.out_dir / f"{scene_id(path, dataset)}.txt")
    elif opts.fmt == "npy":
        outputs.append(opts.out_dir / f"{path.stem}.npy")
    return outputs


def _write_outputs(
    xyz: np.ndarray, labels: np.ndarray, ids: np.ndarray, outputs: list[Path], seg: Segmenter
) -> None:
    from stseg_data.atomic import atomic_write
    from stseg_data.ply import write_ply

    spec = seg.spec
    colors = colorize(labels, seg.num_classes, spec.dataset)
    write_ply(outputs[0], xyz, colors, extra={"label": ids.astype(np.int32)}, overwrite=True)
    for out in outputs[1:]:
        if out.suffix == ".txt":
            with atomic_write(out, "w", overwrite=True) as handle:
                handle.write("\n".join(map(str, ids.tolist())) + "\n")
        else:
            with atomic_write(out, "wb", overwrite=True) as handle:
                np.save(handle, ids.astype(np.int64), allow_pickle=False)


def predict_file(seg: Segmenter, path: Path, opts: PredictOptions) -> list[Path]:
    """Predict one scene file and write its outputs; returns their paths."""
    from stseg_data.io import read_scene

    outputs = output_paths(path, opts, seg.spec.dataset)
    for out in outputs:
        if out.resolve() == path.resolve():
            raise PredictInputError(
                f"{out}: output would overwrite the input; choose another --out"
            )
        if out.exists() and not opts.overwrite:
            raise PredictInputError(f"{out}: already exists (pass --overwrite to replace it)")
    try:
        cloud = read_scene(path)
    except MemoryError as error:  # a huge file: one line naming it, and --keep-going goes on
        raise PredictRuntimeError(f"{path}: {out_of_memory_line(error)}") from None
    if len(cloud) == 0:
        raise PredictInputError(f"{path}: the point cloud has 0 points; nothing to segment")
    try:
        labels, _ = seg.predict(
            cloud.xyz, cloud.rgb, rotations=opts.rotations, fill_color=opts.fill_color
        )
    except PredictInputError as error:
        raise PredictInputError(f"{path}: {error}") from error
    except PredictRuntimeError as error:  # out of memory among them: named per file
        raise PredictRuntimeError(f"{path}: {error}") from error
    if len(labels) != len(cloud):  # F32: one prediction per input point, always
        raise PredictRuntimeError(f"{path}: {len(labels)} predictions for {len(cloud)} points")
    table = np.asarray(seg.spec.label_ids or range(seg.num_classes), dtype=np.int64)
    fresh = [out for out in outputs if not out.exists()]
    try:
        _write_outputs(cloud.xyz, labels, table[labels], outputs, seg)
    except BaseException:
        for out in fresh:  # a scene's outputs appear together or not at all
            out.unlink(missing_ok=True)
        raise
    return outputs


def _without_frames(error: StsegError) -> StsegError:
    """`error` with the tracebacks of it and of its causes dropped, so their frames can be freed."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
    return error


def predict_paths(
    inputs: Iterable[Path],
    seg: Segmenter,
    opts: PredictOptions,
    *,
    on_done: Callable[[], object] | None = None,
) -> PredictSummary:
    """Predict every input with one loaded model; see the module docstring for failures."""
    if opts.fmt not in FORMATS:
        raise StsegInputError(f"format must be one of {', '.join(FORMATS)}, got {opts.fmt!r}")
    summary = PredictSummary()
    for path in inputs:
        try:
            summary.written[str(path)] = predict_file(seg, path, opts)
        except StsegError as error:
            if not opts.keep_going:
                raise
            # the record keeps the message, not the failed scene: its traceback frames (and those of
            # the errors it was raised from) hold that scene's arrays, e.g. after running out of memory
            summary.failed[str(path)] = _without_frames(error)
        if on_done is not None:
            on_done()
    if summary.failed:
        batch_error = PredictBatchError(summary.report())
        if all(isinstance(e, StsegInputError) for e in summary.failed.values()):
            batch_error.exit_code = 2
        raise batch_error
    return summary


def run_predict(
    input_path: str | os.PathLike[str],
    weights: str | os.PathLike[str],
    opts: PredictOptions,
    *,
    device: str = "cpu",
    model_name: str | None = None,
    dataset: str | None = None,
    show_progress: bool = True,
) -> PredictSummary:
    """The whole `predict` command: find inputs, load the checkpoint once, predict them all."""
    files = find_inputs(input_path)
    check_writable(opts.out_dir)  # a read-only or missing place for outputs, before the model loads
    seg = Segmenter.from_checkpoint(weights, device=device, model_name=model_name, dataset=dataset,
                                    precision=opts.precision)  # fmt: skip
    if seg.dimension != 3:
        raise PredictInputError(
            f"{weights}: a {seg.dimension}D (space + time) network; prediction on files supports "
            "3D networks (use Segmenter.predict(xyz, rgb, time=frames) in Python)"
        )

    from tqdm import tqdm

    # the bar shows on a terminal only (disable=None) and erases itself, so errors stay one line
    with tqdm(
        total=len(files), desc="predict", unit="scene", file=sys.stderr, leave=False,
        disable=None if show_progress else True,
    ) as bar:  # fmt: skip
        return predict_paths(files, seg, opts, on_done=lambda: bar.update(1))
