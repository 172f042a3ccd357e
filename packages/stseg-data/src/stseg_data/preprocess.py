"""`preprocess`: raw dataset -> one training PLY per scene, in parallel, resumable.

Output format (all kinds): binary little-endian PLY, vertex fields
`x y z` (float32, or double when float32 would lose precision), `red green blue` (uchar),
`label` (ushort: training id, 255 = ignore) and `instance` (int: 0 / -1 = none), readable with
`stseg_data.io.read_scene`. Layouts:

- scannet:   OUT/train/<scene>.ply (from scans/), OUT/test/<scene>.ply (scans_test/, no labels)
- s3dis:     OUT/Area_<a>/<room>.ply
- synthia4d: OUT/<sequence>/<camera>/<frame>.ply (centimetres kept, labels 16 -> 12)

plus split lists OUT/train.txt and OUT/val.txt (paths relative to OUT) made from the raw split
files when present, and `OUT/.stseg-preprocess.json` (kind, raw folder, complete). RAW is checked
(its scenes listed) before OUT is made. OUT must be new or empty: `overwrite` writes every scene
again over what is there (files of other names are left alone); `resume` continues an interrupted
run into a folder this command wrote for the same kind and RAW, keeping the scene files already
there (each file is written atomically, so one that exists is complete). A scene that fails is
reported and skipped, and the run raises `PreprocessError` (exit 1) listing the failures after
finishing every other scene.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stseg_data.atomic import atomic_write
from stseg_data.errors import PreprocessError, StsegError, StsegInputError
from stseg_data.labels import IGNORE_LABEL
from stseg_data.outputs import check_writable, has_content, refuse_existing
from stseg_data.ply import write_ply
from stseg_data.pointcloud import PointCloud
from stseg_data.splits import read_split_entries, write_split

KINDS = ("scannet", "s3dis", "synthia4d")
#: what a folder written by preprocess holds besides the scenes: lets --resume know it is its own
MARKER = ".stseg-preprocess.json"


@dataclass
class Job:
    kind: str
    source: str
    output: str
    name: str
    require_labels: bool = True
    keep_existing: bool = False


@dataclass
class PreprocessReport:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unknown_labels: int = 0

    def summary(self) -> str:
        done = f", {len(self.skipped)} already done" if self.skipped else ""
        text = f"{len(self.written)} written{done}, {len(self.failed)} failed"
        if self.unknown_labels:
            text += (
                f"; {self.unknown_labels} points had labels outside the class map (set to ignore)"
            )
        return text


def write_training_ply(path: str | os.PathLike[str], cloud: PointCloud, comment: str = "") -> None:
    """Write a preprocessed scene (format in the module docstring), atomically."""
    n = len(cloud)
    labels = np.full(n, IGNORE_LABEL) if cloud.labels is None else cloud.labels
    instances = np.zeros(n, dtype=np.int64) if cloud.instances is None else cloud.instances
    if labels.min() < 0 or labels.max() > IGNORE_LABEL:
        raise StsegInputError(f"{cloud.path}: training labels outside [0, 255]")
    precise = float(np.abs(cloud.xyz).max()) < 1e5  # float32 spacing below 0.01 units
    extra: dict[str, np.ndarray] = {
        "label": labels.astype(np.uint16),
        "instance": instances.astype(np.int32),
    }
    rgb = None if cloud.rgb is None else cloud.rgb
    write_ply(path, cloud.xyz.astype(np.float32 if precise else np.float64), rgb, extra,
              comments=(f"stseg preprocessed {comment}".strip(),))  # fmt: skip


def _read(job: Job, stats: dict) -> PointCloud:
    if job.kind == "scannet":
        from stseg_data.scannet import read_scannet_scene

        return read_scannet_scene(job.source, require_labels=job.require_labels, stats=stats)
    if job.kind == "s3dis":
        from stseg_data.s3dis import read_s3dis_room

        return read_s3dis_room(job.source)
    from stseg_data.synthia import read_synthia_frame

    cloud = read_synthia_frame(job.source)
    if cloud.labels is None and job.require_labels:
        raise StsegInputError(f"{job.source}: no label field (needed for training)")
    return cloud


def run_job(job: Job) -> tuple[str, str, str, int]:
    """Process one scene: (name, 'written' | 'skipped' | 'failed', message, unknown label count)."""
    if job.keep_existing and Path(job.output).exists():
        return job.name, "skipped", "", 0
    stats: dict = {}
    try:
        cloud = _read(job, stats)
        write_training_ply(job.output, cloud, f"{job.kind} labels=train ids ignore=255")
    except StsegError as error:
        return job.name, "failed", str(error), 0
    except Exception as error:  # a bad scene must not stop the others (reported in the summary)
        return job.name, "failed", f"{type(error).__name__}: {error}", 0
    return job.name, "written", "", int(stats.get("unknown_labels", 0))


def _jobs(kind: str, raw: Path, out: Path) -> list[Job]:
    if kind == "scannet":
        from stseg_data.scannet import list_scenes

        jobs = [
            Job(kind, str(s), str(out / "train" / f"{s.name}.ply"), s.name)
            for s in list_scenes(raw, "scans")
        ]
        if (raw / "scans_test").is_dir():
            jobs += [Job(kind, str(s), str(out / "test" / f"{s.name}.ply"), s.name, require_labels=False)
                     for s in list_scenes(raw, "scans_test")]  # fmt: skip
        return jobs
    if kind == "s3dis":
        from stseg_data.s3dis import list_rooms

        return [Job(kind, str(r), str(out / r.parent.name / f"{r.name}.ply"), f"{r.parent.name}/{r.name}")
                for r in list_rooms(raw)]  # fmt: skip
    frames = sorted(p for p in raw.glob("*/*/*.ply"))
    if not frames:
        raise StsegInputError(
            f"{raw}: no Synthia4D frames (expected <sequence>/<camera>/<frame>.ply)"
        )
    return [
        Job(kind, str(f), str(out / f.relative_to(raw)), str(f.relative_to(raw))) for f in frames
    ]


def _write_splits(kind: str, raw: Path, out: Path, jobs: list[Job]) -> None:
    done = {
        job.name: Path(job.output).relative_to(out).as_posix()
        for job in jobs
        if Path(job.output).exists()
    }
    sources = {"scannet": ("scannetv2_train.txt", "scannetv2_val.txt"),
               "s3dis": ("s3dis_train.txt", "s3dis_val.txt"), "synthia4d": ("train_raw.txt", "val_raw.txt")}[kind]  # fmt: skip
    for split, source in zip(("train", "val"), sources):
        if (raw / source).is_file():
            names = [entry for _, entry in read_split_entries(raw / source)]
        elif kind == "s3dis":
            names = [n for n in done if n.startswith("Area_5/") == (split == "val")]
        else:
            names = list(done) if split == "train" else []
        entries = [done[n] for n in names if n in done and not done[n].startswith("test/")]
        write_split(out / f"{split}.txt", entries)


def preprocess(
    kind: str,
    raw: str | os.PathLike[str],
    out: str | os.PathLike[str],
    workers: int = 1,
    *,
    progress: bool = False,
    overwrite: bool = False,
    resume: bool = False,
) -> PreprocessReport:
    """Preprocess every scene of a raw dataset (see the module docstring). Returns the report;
    raises `PreprocessError` (with `.report`) when any scene failed."""
    if kind not in KINDS:
        raise StsegInputError(f"unknown dataset kind {kind!r}; choose one of {', '.join(KINDS)}")
    if overwrite and resume:
        raise StsegInputError("--overwrite and --resume exclude each other; choose one")
    if workers < 1:
        raise StsegInputError(f"--workers must be at least 1, got {workers}")
    raw, out = Path(raw), Path(out)
    if not raw.is_dir():
        raise StsegInputError(f"{raw}: raw dataset folder does not exist")
    if out.resolve() == raw.resolve():
        raise StsegInputError(f"{out}: the output folder is the raw dataset; choose another OUT")
    jobs = _jobs(kind, raw, out)  # reads RAW: a bad dataset is refused before OUT exists
    if resume:
        _check_resumable(out, kind, raw)
    else:
        refuse_existing(
            out, overwrite, hint=f"pass --overwrite to write it again, or --resume {out}"
        )
    check_writable(out)
    for job in jobs:
        job.keep_existing = resume
    out.mkdir(parents=True, exist_ok=True)
    _write_marker(out, kind, raw, complete=False)
    report = PreprocessReport()
    # on a terminal only (disable=None); closed before an error propagates (one line of its own)
    with tqdm(total=len(jobs), desc=f"preprocess {kind}", unit="scene",
              disable=None if progress else True) as bar:  # fmt: skip
        if workers <= 1:
            _collect((run_job(job) for job in jobs), report, bar)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(run_job, job) for job in jobs]
                _collect((f.result() for f in as_completed(futures)), report, bar)
    _write_splits(kind, raw, out, jobs)
    _write_marker(out, kind, raw, complete=not report.failed)
    if report.failed:
        lines = "; ".join(f"{name}: {message}" for name, message in sorted(report.failed))
        error = PreprocessError(f"{report.summary()}. Failed: {lines}")
        error.report = report  # type: ignore[attr-defined]
        raise error
    return report


def _check_resumable(out: Path, kind: str, raw: Path) -> None:
    """--resume continues only this command's own run of the same kind from the same RAW."""
    if not has_content(out):
        return
    try:
        found = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        found = None
    if not isinstance(found, dict):
        raise StsegInputError(
            f"{out}: refused: --resume continues only a folder written by stseg-data preprocess "
            f"(it has no {MARKER}); nothing was changed"
        )
    wanted = {"kind": kind, "raw": str(raw.resolve())}
    if {key: found.get(key) for key in wanted} != wanted:
        raise StsegInputError(
            f"{out}: refused: --resume: this folder was preprocessed as {found.get('kind')!r} "
            f"from {found.get('raw')}, not {kind!r} from {raw.resolve()}; nothing was changed"
        )


def _write_marker(out: Path, kind: str, raw: Path, *, complete: bool) -> None:
    record = {"tool": "stseg-data preprocess", "kind": kind, "raw": str(raw.resolve()),
              "complete": complete}  # fmt: skip
    with atomic_write(out / MARKER, "w") as handle:
        json.dump(record, handle)
        handle.write("\n")


def _collect(results, report: PreprocessReport, bar) -> None:
    for name, status, message, unknown in results:
        getattr(report, status).append((name, message) if status == "failed" else name)
        report.unknown_labels += unknown
        if status == "failed":
            bar.write(f"failed: {name}: {message}")
        if unknown:  # F14: per-scene count of ids outside the class map
            bar.write(f"{name}: {unknown} points with labels outside the class map set to ignore")
        bar.update(1)
