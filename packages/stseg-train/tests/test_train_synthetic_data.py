"""The main job's data folder: reused when complete, rebuilt when a run was killed while writing it."""

from __future__ import annotations

import json

import pytest

from stseg_train.errors import TrainInputError
from stseg_train.synthetic import make_synthetic_dataset


def test_interrupted_data_is_rebuilt_from_empty_folders(tmp_path):
    root = tmp_path / "data"
    (root / "raw" / "scans" / "scene9999_00").mkdir(parents=True)
    (root / "raw" / "scans" / "scene9999_00" / "half.ply").write_bytes(b"ply\n")  # a killed write
    (root / "prepared").mkdir()
    (root / "prepared" / "stale.ply").write_bytes(b"ply\n")
    (root / "synthetic.json").write_text(json.dumps({"scenes": 2, "seed": 0, "complete": False}))

    prepared = make_synthetic_dataset(root, 2, 0)

    assert json.loads((root / "synthetic.json").read_text())["complete"] is True
    assert not (root / "raw" / "scans" / "scene9999_00").exists()
    assert not (prepared / "stale.ply").exists()
    scenes = sorted(p.name for p in (root / "raw" / "scans").iterdir())
    assert len(scenes) == 2
    before = {p: p.stat().st_mtime_ns for p in prepared.rglob("*") if p.is_file()}
    assert make_synthetic_dataset(root, 2, 0) == prepared  # complete: reused, not rewritten
    assert {p: p.stat().st_mtime_ns for p in prepared.rglob("*") if p.is_file()} == before


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(TrainInputError, match="something other than synthetic data"):
        make_synthetic_dataset(tmp_path, 2, 0)
    assert (tmp_path / "mine.txt").read_text() == "user data"
