"""Benchmark-format export: round trip, format details, and the reader's validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssen_instance.errors import InstanceInputError, PredictionFileError
from ssen_instance.export import read_scannet_instances, to_nyu40, write_scannet_instances
from ssen_instance.instances import Instances


def _instances() -> Instances:
    return Instances(
        [np.array([0, 2, 3]), np.array([4]), np.array([1, 2])], [5, 39, 7], [0.9, 0.25, 0.5], 6
    )


def test_round_trip_and_format(tmp_path: Path) -> None:
    index = write_scannet_instances(tmp_path, "scene0000_00", _instances())
    assert index == tmp_path / "scene0000_00.txt"
    lines = index.read_text().splitlines()
    assert lines[0] == "pred_mask/scene0000_00_0.txt 5 0.900000"
    assert (tmp_path / "pred_mask/scene0000_00_0.txt").read_text() == "1\n0\n1\n1\n0\n0\n"
    back = read_scannet_instances(index, num_vertices=6)
    assert [m.tolist() for m in back.masks] == [[0, 2, 3], [4], [1, 2]]
    assert back.labels.tolist() == [5, 39, 7] and back.scores.tolist() == [0.9, 0.25, 0.5]
    assert not list(tmp_path.rglob("*.tmp"))


def test_empty_scene(tmp_path: Path) -> None:
    index = write_scannet_instances(tmp_path, "s", Instances.empty(10))
    assert index.read_text() == ""
    assert len(read_scannet_instances(index, num_vertices=10)) == 0


def test_to_nyu40() -> None:
    inst = Instances([np.array([0])], [4], [1.0], 1)  # training id 4 = chair = NYU40 5
    assert to_nyu40(inst).labels.tolist() == [5]


def test_writer_rejects_bad_labels_and_names(tmp_path: Path) -> None:
    with pytest.raises(InstanceInputError, match="NYU40"):
        write_scannet_instances(tmp_path, "s", Instances([np.array([0])], [0], [1.0], 3))
    with pytest.raises(InstanceInputError, match="plain file name"):
        write_scannet_instances(tmp_path, "a b", _instances())
    write_scannet_instances(tmp_path, "s", _instances())
    with pytest.raises(InstanceInputError, match="already exists"):
        write_scannet_instances(tmp_path, "s", _instances(), overwrite=False)


def test_mask_length_mismatch_is_an_error(tmp_path: Path) -> None:
    index = write_scannet_instances(tmp_path, "s", _instances())
    with pytest.raises(PredictionFileError, match="6 lines but the scene has 7 vertices"):
        read_scannet_instances(index, num_vertices=7)
    (tmp_path / "pred_mask/s_1.txt").write_text("0\n1\n")
    with pytest.raises(PredictionFileError, match=r"s_1\.txt: 2 lines but the scene has 6"):
        read_scannet_instances(index)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("pred_mask/s_0.txt 5", "expected '<relative mask path>"),
        ("/etc/passwd 5 0.5", "must be relative"),
        ("../outside.txt 5 0.5", "points outside"),
        ("pred_mask/s_0.txt chair 0.5", "not numbers"),
        ("pred_mask/s_0.txt 5 nan", "not finite"),
        ("pred_mask/missing.txt 5 0.5", "does not exist"),
    ],
)
def test_reader_rejects_malformed_lines(tmp_path: Path, line: str, message: str) -> None:
    write_scannet_instances(tmp_path, "s", _instances())
    index = tmp_path / "s.txt"
    index.write_text(line + "\n")
    with pytest.raises(PredictionFileError, match=message):
        read_scannet_instances(index, num_vertices=6)


def test_reader_names_bad_mask_line(tmp_path: Path) -> None:
    write_scannet_instances(tmp_path, "s", _instances())
    (tmp_path / "pred_mask/s_0.txt").write_text("1\n0\nx\n1\n0\n0\n")
    with pytest.raises(PredictionFileError, match="line 3"):
        read_scannet_instances(tmp_path / "s.txt", num_vertices=6)
    with pytest.raises(PredictionFileError, match="does not exist"):
        read_scannet_instances(tmp_path / "nope.txt")


def test_reader_keeps_non_instance_labels(tmp_path: Path) -> None:
    # Defined behaviour: the reader keeps any integer label; the evaluator skips and counts them.
    write_scannet_instances(tmp_path, "s", Instances([np.array([0])], [1], [0.5], 2))
    assert read_scannet_instances(tmp_path / "s.txt").labels.tolist() == [1]
