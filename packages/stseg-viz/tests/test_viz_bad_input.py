"""Bad input through the CLI: exit code 2 and one line naming the offending file, no output file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from stseg_data.pointcloud import PointCloud
from stseg_viz.cli import main
from stseg_viz.errors import VizInputError
from stseg_viz.inputs import check_cloud

HEADER = "ply\nformat ascii 1.0\nelement vertex {n}\nproperty float x\nproperty float y\nproperty float z\nend_header\n"


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


@pytest.fixture
def files(room: dict, tmp_path: Path) -> dict:
    (tmp_path / "short.txt").write_text("1\n2\n3\n")
    (tmp_path / "big_ids.txt").write_text("\n".join(["40"] * len(room["cloud"])) + "\n")
    (tmp_path / "empty.ply").write_text(HEADER.format(n=0))
    (tmp_path / "nan.ply").write_text(HEADER.format(n=2) + "0 0 0\nnan 1 1\n")
    return {"scene": str(room["scene"]), "dir": tmp_path}


@pytest.mark.parametrize("command", ["render", "export", "html"])
def test_label_file_length_mismatch(files: dict, command: str) -> None:
    out = files["dir"] / "out"
    labels = str(files["dir"] / "short.txt")
    code, output = _run([command, files["scene"], "--color-by", "label", "--labels", labels,
                         "--out", str(out)] if command != "html" else
                        [command, files["scene"], "--labels", labels, "--out", str(out)])  # fmt: skip
    assert code == 2
    assert "short.txt: has 3 labels but" in output and "3000 points" in output
    assert not out.exists()


def test_compare_with_a_short_prediction(files: dict) -> None:
    code, output = _run(
        ["compare", str(files["dir"] / "short.txt"), files["scene"], "--out", "x.png"]
    )
    assert code == 2 and "short.txt: has 3 labels" in output


def test_label_ids_outside_the_palette(files: dict) -> None:
    labels = str(files["dir"] / "big_ids.txt")
    args = ["render", files["scene"], "--color-by", "label", "--labels", labels]
    code, output = _run([*args, "--out", str(files["dir"] / "o.png")])
    assert code == 2
    assert "big_ids.txt: label ids 40 are outside the scannet20 palette" in output
    # The nyu40 palette (raw NYU40 ids 0..40) has id 40 ("otherprop").
    code, output = _run([*args, "--palette", "nyu40", "--out", str(files["dir"] / "o.png")])
    assert code == 0, output


@pytest.mark.parametrize("name", ["empty.ply", "nan.ply"])
@pytest.mark.parametrize("command", ["render", "export", "html"])
def test_empty_and_nan_clouds(files: dict, name: str, command: str) -> None:
    scene = str(files["dir"] / name)
    code, output = _run([command, scene, "--out", str(files["dir"] / "o")])
    assert code == 2
    assert output.startswith(f"Error: {scene}") and len(output.strip().splitlines()) == 1


def test_missing_scene_file(files: dict) -> None:
    code, output = _run(["render", str(files["dir"] / "nope.ply"), "--out", "o.png"])
    assert code == 2 and "nope.ply: no such file" in output


def test_check_cloud_guards_other_readers() -> None:
    with pytest.raises(VizInputError, match=r"a\.npy: the point cloud is empty"):
        check_cloud(PointCloud(xyz=np.zeros((0, 3))), "a.npy")
    xyz = np.zeros((4, 3))
    xyz[2, 1] = np.inf
    with pytest.raises(
        VizInputError,
        match=r"b\.npy: 1 points have NaN or infinite coordinates \(first at index 2\)",
    ):
        check_cloud(PointCloud(xyz=xyz), "b.npy")
