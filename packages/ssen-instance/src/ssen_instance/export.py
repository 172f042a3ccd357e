"""ScanNet instance benchmark files: writer and validating reader.

Layout (the official evaluation script's):
    OUT/<scene>.txt                 one line per instance: `pred_mask/<scene>_<k>.txt <nyu40 id> <confidence>`
    OUT/pred_mask/<scene>_<k>.txt   one integer per mesh vertex, 1 inside the instance, 0 outside
Every file is written atomically; the mask files first and the `<scene>.txt` index last, so an
index never names a mask file that is not complete.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssen_instance.errors import InstanceInputError, PredictionFileError
from ssen_instance.instances import Instances
from stseg_data.atomic import atomic_write
from stseg_data.labels import scannet20_to_nyu40

MASK_DIR = "pred_mask"
log = logging.getLogger(__name__)


def to_nyu40(instances: Instances) -> Instances:
    """The same instances with ScanNet training ids (0..19) turned into NYU40 ids."""
    return Instances(
        instances.masks,
        scannet20_to_nyu40(instances.labels),
        instances.scores,
        instances.num_points,
    )


def _mask_bytes(indices: np.ndarray, num_points: int) -> bytes:
    # Each line is exactly two bytes ("0\n" / "1\n"), so the file is one vectorised fill.
    buf = np.full(2 * num_points, ord("0"), dtype=np.uint8)
    buf[1::2] = ord("\n")
    buf[2 * np.asarray(indices, dtype=np.int64)] = ord("1")
    return buf.tobytes()


def write_scannet_instances(
    out_dir: str | os.PathLike[str], scene: str, instances: Instances, *, overwrite: bool = True
) -> Path:
    """Write one scene's instances (labels in NYU40 ids) in the benchmark format; returns the index path."""
    if not scene or any(c.isspace() for c in scene) or "/" in scene or scene.startswith("."):
        raise InstanceInputError(f"scene name {scene!r} must be a plain file name without spaces")
    bad = [int(x) for x in instances.labels if not 1 <= x <= 40]
    if bad:
        raise InstanceInputError(
            f"{scene}: instance label ids must be NYU40 ids 1..40 (convert training ids with "
            f"to_nyu40), got {sorted(set(bad))[:10]}"
        )
    if not np.isfinite(instances.scores).all():
        raise InstanceInputError(f"{scene}: instance confidences must be finite")
    out = Path(out_dir)
    index = out / f"{scene}.txt"
    if not overwrite and index.exists():
        raise InstanceInputError(f"{index}: already exists (pass --overwrite to replace it)")
    # the mask folder exists even for a scene without instances: one layout for every output
    (out / MASK_DIR).mkdir(parents=True, exist_ok=True)
    lines = []
    for k, (mask, label, score) in enumerate(
        zip(instances.masks, instances.labels, instances.scores)
    ):
        rel = f"{MASK_DIR}/{scene}_{k}.txt"
        with atomic_write(out / rel, "wb") as handle:
            handle.write(_mask_bytes(mask, instances.num_points))
        lines.append(f"{rel} {int(label)} {float(score):.6f}\n")
    with atomic_write(index, "w") as handle:
        handle.write("".join(lines))
    return index


def _read_mask(path: Path, where: str) -> np.ndarray:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PredictionFileError(f"{where}: mask file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PredictionFileError(f"{where}: cannot read mask file {path}: {error}") from None
    lines = text.splitlines()
    try:
        values = np.array(lines, dtype=np.int64)
    except ValueError:
        for number, line in enumerate(lines, start=1):
            try:
                int(line)
            except ValueError:
                raise PredictionFileError(
                    f"{path}: line {number}: expected one integer per vertex, found {line[:40]!r}"
                ) from None
        raise
    return values


@dataclass
class _Entry:
    """One `<scene>.txt` line: where it is, its mask file and what it says about the mask."""

    where: str
    mask_path: Path
    label: int
    conf: float


def _parse_index_line(index: Path, root: Path, number: int, line: str) -> tuple[str, _Entry]:
    """(the official reader's key for the mask file, the line's entry); raises on a bad line."""
    where = f"{index}: line {number}"
    parts = line.split()
    if len(parts) != 3:
        raise PredictionFileError(
            f"{where}: expected '<relative mask path> <label id> <confidence>', found {line[:80]!r}"
        )
    rel, label_text, conf_text = parts
    if os.path.isabs(rel):
        raise PredictionFileError(f"{where}: mask path {rel!r} must be relative")
    mask_path = (index.parent / rel).resolve()
    if not mask_path.is_relative_to(root):
        raise PredictionFileError(f"{where}: mask path {rel!r} points outside {root}")
    try:
        label = int(float(label_text))
        conf = float(conf_text)
    except ValueError:
        raise PredictionFileError(
            f"{where}: label id {label_text!r} / confidence {conf_text!r} are not numbers"
        ) from None
    if not math.isfinite(conf):
        raise PredictionFileError(f"{where}: confidence {conf_text!r} is not finite")
    # The official script keys its predictions by this path (joined, normalised, symlinks kept).
    return os.path.abspath(index.parent / rel), _Entry(where, mask_path, label, conf)


def read_scannet_instances(
    index_path: str | os.PathLike[str],
    num_vertices: int | None = None,
    *,
    only_labels: Collection[int] | None = None,
) -> Instances:
    """Read `<scene>.txt` and its mask files into `Instances` (labels as written: NYU40 ids).

    As ScanNet's evaluate_semantic_instance.py reads the file (it keeps the lines in a dict keyed
    by the mask file's path): a mask path listed on several lines is ONE prediction, with the
    label id and confidence of its last line, in the place of its first line (the order the
    greedy matching visits predictions); a warning names the path. Paths are compared after
    joining and normalising (`pred_mask/./a.txt` is `pred_mask/a.txt`), not after following
    symbolic links.

    num_vertices: the scene's vertex count; every mask file read must have exactly that many
    lines (without it, the first mask file's length is used and the others must agree).
    only_labels: when given (e.g. `evaluate.INSTANCE_NYU40_IDS`), the mask files of predictions
    whose label is not in it are not opened, as the official script never opens them: such
    predictions come back with an empty mask (the evaluation skips and counts them) and a
    missing or short mask file of theirs is no error. Without it every mask file is read and
    checked.
    Raises `PredictionFileError` naming the file and line on any malformed entry.
    """
    index = Path(index_path)
    root = index.parent.resolve()
    try:
        lines = index.read_text().splitlines()
    except FileNotFoundError:
        raise PredictionFileError(f"{index}: prediction file does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PredictionFileError(f"{index}: cannot read: {error}") from None
    entries: dict[str, _Entry] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, entry = _parse_index_line(index, root, number, line)
        if key in entries:
            log.warning(
                "%s: mask %s is listed again (%s): scored once, with this line's label "
                "and confidence, as the official evaluation does",
                entry.where, key, entries[key].where.rsplit(": ", 1)[-1],
            )  # fmt: skip
            entry = _Entry(entries[key].where, entry.mask_path, entry.label, entry.conf)
        entries[key] = entry  # a dict keeps the first line's place and takes the last's values
    wanted = None if only_labels is None else {int(x) for x in only_labels}
    masks, labels, scores = [], [], []
    n = num_vertices
    for entry in entries.values():
        if wanted is not None and entry.label not in wanted:
            masks.append(np.zeros(0, np.int64))
        else:
            values = _read_mask(entry.mask_path, entry.where)
            if n is None:
                n = values.size
            if values.size != n:
                raise PredictionFileError(
                    f"{entry.mask_path}: {values.size} lines but the scene has {n} vertices "
                    f"(named in {entry.where}); masks must have one line per mesh vertex"
                )
            masks.append(np.flatnonzero(values))
        labels.append(entry.label)
        scores.append(entry.conf)
    return Instances(masks, np.array(labels, np.int64), np.array(scores), n or 0)
