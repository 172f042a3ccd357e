"""Far outliers: the detection rule against a slow reference, and pictures framed on the bulk.

One point at 1e12 used to make render / compare / html pictures of an empty-looking white (or
dark) canvas with no warning. Now the commands warn on stderr (one line: how many points, the
bulk's bounds) and frame the picture on the bulk.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from stseg_data.io import read_scene
from stseg_data.ply import write_ply
from stseg_viz._toy import toy_room
from stseg_viz.outliers import BULK_PERCENTILES, REACH, find_outliers
from stseg_viz.palettes import get_palette
from stseg_viz.viewer import viewer_html


def _percentile(values: list[float], q: float) -> float:
    """numpy's default ("linear") percentile, by its definition: position q/100 * (n - 1)."""
    ordered = sorted(values)
    position = q / 100 * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


def _reference_outliers(xyz: np.ndarray) -> list[bool]:
    """The rule of `stseg_viz.outliers`, one point and one axis at a time."""
    points = xyz.tolist()
    boxes = []
    for axis in range(3):
        column = [p[axis] for p in points]
        boxes.append(tuple(_percentile(column, q) for q in BULK_PERCENTILES))
    scale = max(high - low for low, high in boxes)
    flags = []
    for point in points:
        far = False
        for axis in range(3):
            low, high = boxes[axis]
            if point[axis] < low - REACH * scale or point[axis] > high + REACH * scale:
                far = True
        flags.append(far)
    if scale <= 0 or all(flags):
        return [False] * len(points)
    return flags


def _random_scene(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(1, 400))
    xyz = rng.normal(0, rng.uniform(0.1, 5), (n, 3)) * rng.uniform(0, 1, 3)  # some flat axes
    if rng.random() < 0.2:
        xyz = np.round(xyz)  # ties and repeated points
    for _ in range(int(rng.integers(0, 4))):  # a few strays, near or very far
        xyz[rng.integers(n)] = rng.normal(0, 1, 3) * 10.0 ** rng.integers(0, 13)
    return xyz


@pytest.mark.parametrize("seed", range(200))
def test_find_outliers_matches_the_slow_reference(seed: int) -> None:
    xyz = _random_scene(np.random.default_rng(seed))
    bulk = find_outliers(xyz)
    assert bulk.outliers.tolist() == _reference_outliers(xyz)
    inside = xyz[~bulk.outliers]
    np.testing.assert_array_equal(bulk.low, inside.min(axis=0))
    np.testing.assert_array_equal(bulk.high, inside.max(axis=0))


def test_one_point_at_1e12_is_the_only_outlier() -> None:
    xyz = toy_room(3000, seed=2).xyz
    assert find_outliers(xyz).count == 0  # a real-looking room has none
    stray = np.vstack([xyz, [[1e12, 0, 0]]])
    bulk = find_outliers(stray)
    assert bulk.count == 1 and bulk.outliers[-1]
    assert bulk.high[0] < 10 and "x 0" in bulk.describe()


def test_a_flat_scene_keeps_points_just_above_the_floor() -> None:
    rng = np.random.default_rng(0)
    floor = np.c_[rng.uniform(0, 5, (1000, 2)), np.zeros(1000)]
    floor[:5, 2] = 0.3  # a few points 30 cm up: far from the zero-height extent, not from the room
    assert find_outliers(floor).count == 0


def test_the_viewer_leaves_far_outliers_out(room: dict, caplog: pytest.LogCaptureFixture) -> None:
    cloud = room["cloud"]
    xyz = np.vstack([cloud.xyz, [[1e12, 1e12, 0]]])
    stray = type(cloud)(xyz, path="stray.ply")
    html, summary = viewer_html(stray, palette=get_palette("scannet20"))
    assert summary["shown"] == len(cloud)
    assert "1 far outliers hidden" in html
    assert "stray.ply: 1 of 3,001 points lie far outside the scene's bulk" in caplog.text


def _drawn_pixels(png: Path) -> int:
    """Pixels of the picture that are not the white background (the title and legend count too)."""
    image = imread(png)[..., :3]
    return int((image < 0.98).any(axis=-1).sum())


def _viz(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "stseg_viz", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["render", "compare"])
def test_cli_warns_and_frames_the_bulk(room: dict, tmp_path: Path, command: str) -> None:
    cloud = room["cloud"]
    clean, stray = tmp_path / "clean.ply", tmp_path / "stray.ply"
    extra = {"label": cloud.labels.astype(np.int32)}
    write_ply(clean, cloud.xyz, cloud.rgb, extra=extra)
    xyz = np.vstack([cloud.xyz, [[1e12, 3.0, 1.0]]])
    labels = np.append(cloud.labels, 1).astype(np.int32)
    write_ply(stray, xyz, np.vstack([cloud.rgb, [[1.0, 0, 0]]]), extra={"label": labels})
    preds = {clean: tmp_path / "clean.txt", stray: tmp_path / "stray.txt"}
    preds[clean].write_text("\n".join(map(str, labels[:-1])) + "\n")
    preds[stray].write_text("\n".join(map(str, labels)) + "\n")

    def run(scene: Path, out: Path) -> subprocess.CompletedProcess[str]:
        if command == "render":
            return _viz("render", str(scene), "--out", str(out))
        return _viz("compare", str(preds[scene]), str(scene), "--out", str(out))

    without = run(clean, tmp_path / "without.png")
    assert without.returncode == 0 and "warning" not in without.stderr, without.stderr
    result = run(stray, tmp_path / "with.png")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert f"{stray}: 1 of 3,001 points lie far outside the scene's bulk (x " in warnings[0]
    assert "framed on the bulk" in warnings[0]
    # The picture shows the room as large as without the stray point (not a dot on white).
    assert _drawn_pixels(tmp_path / "with.png") > 0.9 * _drawn_pixels(tmp_path / "without.png")


def test_export_warns_and_keeps_the_outlier(room: dict, tmp_path: Path) -> None:
    cloud = room["cloud"]
    stray = tmp_path / "stray.ply"
    write_ply(stray, np.vstack([cloud.xyz, [[0, 0, -1e12]]]), np.vstack([cloud.rgb, [[0, 0, 0]]]))
    result = _viz("export", str(stray), "--out", str(tmp_path / "out.ply"))
    assert result.returncode == 0, result.stderr
    assert "1 of 3,001 points lie far outside" in result.stderr
    assert "kept in the PLY" in result.stderr
    assert read_scene(tmp_path / "out.ply").xyz[-1, 2] == -1e12
