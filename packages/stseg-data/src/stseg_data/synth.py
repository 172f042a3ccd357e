"""`write_synthetic`: procedural datasets in the real on-disk formats (DESIGN §5).

Deterministic for a seed: scene i of a dataset depends only on (seed, i), so scene files are
identical whatever `scenes` is. See `synth_scannet`, `synth_s3dis`, `synth_synthia` for layouts.
"""

from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from stseg_data.errors import StsegInputError

KINDS = ("scannet", "s3dis", "synthia4d")


def write_synthetic(
    kind: str,
    out: str | os.PathLike[str],
    scenes: int,
    seed: int = 0,
    *,
    frames: int = 8,
    spacing: float | None = None,
    progress: bool = False,
) -> list[str]:
    """Write `scenes` synthetic scenes (sequences for synthia4d) of `kind` under `out`, plus the
    split files; returns the scene names (frame paths for synthia4d)."""
    if kind not in KINDS:
        raise StsegInputError(f"unknown dataset kind {kind!r}; choose one of {', '.join(KINDS)}")
    if scenes < 1:
        raise StsegInputError(f"--scenes must be at least 1, got {scenes}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    bar = tqdm(range(scenes), desc=f"synth {kind}", unit="scene", disable=not progress)
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
