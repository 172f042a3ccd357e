"""`write_synthetic`: procedural datasets in the real on-disk formats (DESIGN §5).

Deterministic for a seed: scene i of a dataset depends only on (seed, i), so scene files are
identical whatever `scenes` is. See `synth_scannet`, `synth_s3dis`, `synth_synthia` for layouts.
Every synth folder also holds `.stseg-synth.json` (kind, seed, scenes, frames, spacing, complete).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stseg_data.atomic import atomic_write
from stseg_data.errors import StsegInputError
from stseg_data.outputs import check_writable, has_content, refuse_existing

KINDS = ("scannet", "s3dis", "synthia4d")
#: written into every folder synth fills: it is what lets --overwrite replace that folder (and only
#: such a folder: a real dataset has no marker, so it is never replaced)
MARKER = ".stseg-synth.json"
#: what synth puts at the top of a folder, per kind (what --overwrite removes; nothing else is)
_WRITTEN = {
    "scannet": re.compile(r"scans|scannetv2-labels\.combined\.tsv|scannetv2_(train|val)\.txt"),
    "s3dis": re.compile(r"Area_\d+|s3dis_(train|val)\.txt"),
    "synthia4d": re.compile(r"SYNTHIA-SEQS-\d+-SUMMER|(train|val)_raw\.txt"),
}


def write_synthetic(
    kind: str,
    out: str | os.PathLike[str],
    scenes: int,
    seed: int = 0,
    *,
    frames: int = 8,
    spacing: float | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> list[str]:
    """Write `scenes` synthetic scenes (sequences for synthia4d) of `kind` under `out`, plus the
    split files; returns the scene names (frame paths for synthia4d).

    `out` must be new or empty. `overwrite=True` replaces an earlier synth output (a folder with
    the `MARKER` file): the files that synth wrote there are removed first, so no old scene stays
    beside the new ones; a folder without the marker is refused even then (it may be a real
    dataset). A run that fails removes what it wrote.
    """
    if kind not in KINDS:
        raise StsegInputError(f"unknown dataset kind {kind!r}; choose one of {', '.join(KINDS)}")
    if scenes < 1:
        raise StsegInputError(f"--scenes must be at least 1, got {scenes}")
    if frames < 1:
        raise StsegInputError(f"--frames must be at least 1, got {frames}")
    if spacing is not None and not spacing > 0:
        raise StsegInputError(f"--spacing must be positive, got {spacing}")
    root = Path(out)
    previous = _claim_folder(root, overwrite)
    check_writable(root)
    created = not root.exists()
    settings = {"kind": kind, "seed": seed, "scenes": scenes, "frames": frames, "spacing": spacing}
    root.mkdir(parents=True, exist_ok=True)
    # the marker comes first (complete: false), so a run killed half-way leaves a folder that
    # --overwrite may replace; it says complete: true once every file is written
    _write_marker(root, settings, complete=False)
    if previous is not None:
        _remove_written(root, previous)
    try:
        names = _write_kind(kind, root, scenes, seed, frames, spacing, progress)
    except BaseException:
        _remove_written(root, kind)  # no half-written dataset is left behind
        (root / MARKER).unlink(missing_ok=True)
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise
    _write_marker(root, settings, complete=True)
    return names


def read_marker(root: Path) -> dict[str, Any] | None:
    """The settings synth recorded in `root`, or None where synth did not write this folder."""
    try:
        found = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(found, dict) and found.get("kind") in KINDS:
        return found
    return None


def _claim_folder(root: Path, overwrite: bool) -> str | None:
    """Refuse a folder with content unless it is synth's own and `overwrite`; the kind written
    there before (whose files are to be removed), or None for a new or empty folder."""
    if root.exists() and not root.is_dir():
        raise StsegInputError(f"{root}: is a file, not a folder")
    if not has_content(root):
        return None
    marker = read_marker(root)
    if marker is None:
        if overwrite:
            raise StsegInputError(
                f"{root}: refused: --overwrite replaces only a folder written by stseg-data synth "
                f"(it has no {MARKER}), and this one may hold a real dataset; nothing was changed"
            )
        refuse_existing(root, False, hint="choose a new or empty folder")
    refuse_existing(root, overwrite)
    return str(marker["kind"]) if marker else None


def _remove_written(root: Path, kind: str) -> None:
    """Remove what synth writes for `kind` at the top of `root` (other entries are left alone)."""
    for entry in root.iterdir():
        if not _WRITTEN[kind].fullmatch(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _write_marker(root: Path, settings: dict[str, Any], *, complete: bool) -> None:
    with atomic_write(root / MARKER, "w") as handle:
        json.dump({"tool": "stseg-data synth", **settings, "complete": complete}, handle)
        handle.write("\n")


def _write_kind(
    kind: str,
    root: Path,
    scenes: int,
    seed: int,
    frames: int,
    spacing: float | None,
    progress: bool,
) -> list[str]:
    # the bar shows on a terminal only (disable=None), and is closed (its line ended) before an
    # error propagates, so the error stays one line of its own
    with tqdm(range(scenes), desc=f"synth {kind}", unit="scene",
              disable=None if progress else True) as bar:  # fmt: skip
        if kind == "scannet":
            from stseg_data.synth_scannet import write_label_tsv, write_scannet_scene, write_splits

            write_label_tsv(root)
            names = [write_scannet_scene(root, i, seed, spacing or 0.035) for i in bar]
            write_splits(root, names)
            return names
        if kind == "s3dis":
            from stseg_data.synth_s3dis import write_s3dis_room, write_s3dis_splits

            names = [write_s3dis_room(root, i, seed, spacing or 0.035) for i in bar]
            write_s3dis_splits(root, names)
            return names
        from stseg_data.synth_synthia import write_synthia_sequence, write_synthia_splits

        sequences = [write_synthia_sequence(root, i, seed, frames, spacing or 0.15) for i in bar]
        write_synthia_splits(root, sequences)
        return [p for seq in sequences for p in seq]
