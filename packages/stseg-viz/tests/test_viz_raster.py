"""The numpy z-buffer against an obviously correct per-point loop, and its projection."""

from __future__ import annotations

import numpy as np
import pytest

from stseg_viz.errors import VizInputError
from stseg_viz.raster import VIEWS, cutaway_mask, rasterize, view_rotation


def _reference(
    xyz: np.ndarray, colors: np.ndarray, view: str, width: int, height: int
) -> np.ndarray:
    """Loop version: same projection, keep the point with the largest camera depth per pixel."""
    cam = (xyz - xyz.mean(0)) @ view_rotation(view).T
    low, high = cam[:, :2].min(0), cam[:, :2].max(0)
    extent = np.maximum(high - low, 1e-9)
    margin = 8
    scale = min((width - 2 * margin) / extent[0], (height - 2 * margin) / extent[1])
    offset = (np.array([width, height]) - extent * scale) / 2
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for i, (x, y, z) in enumerate(cam):
        u = min(max(int((x - low[0]) * scale + offset[0]), 0), width - 1)
        v = min(max(int(height - 1 - ((y - low[1]) * scale + offset[1])), 0), height - 1)
        if (v, u) not in best or z > best[(v, u)][0]:
            best[(v, u)] = (z, i)
    image = np.zeros((height, width, 4), dtype=np.uint8)
    for (v, u), (_, i) in best.items():
        image[v, u, :3] = colors[i]
        image[v, u, 3] = 255
    return image


@pytest.mark.parametrize("view", VIEWS)
def test_zbuffer_matches_the_reference_loop(view: str) -> None:
    rng = np.random.default_rng(3)
    xyz = rng.uniform(0, 1, (400, 3))
    colors = rng.integers(0, 256, (400, 3), dtype=np.uint8)
    fast = rasterize(xyz, colors, view=view, width=40, height=30, point_size=1, edges=False)
    slow = _reference(xyz, colors, view, 40, 30)
    # Depths are quantised to 20 bits: equal only up to ties closer than 1e-6 of the range.
    assert (fast[..., 3] == slow[..., 3]).all()
    assert (fast == slow).all(axis=-1).mean() > 0.995


def test_nearest_point_wins_whatever_the_input_order() -> None:
    # Two points on the same vertical line: seen from the top, the higher one (z = 1) wins.
    xyz = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    colors = np.array([[255, 0, 0], [0, 0, 255], [0, 255, 0]], dtype=np.uint8)
    for order in ([0, 1, 2], [1, 0, 2]):
        image = rasterize(xyz[order], colors[order], view="top", width=20, height=20, point_size=1)
        drawn = image[image[..., 3] > 0][:, :3].tolist()
        assert [0, 0, 255] in drawn and [255, 0, 0] not in drawn


def test_splats_cover_a_square_and_background_stays_transparent() -> None:
    xyz = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    colors = np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8)
    image = rasterize(xyz, colors, view="top", width=50, height=50, point_size=3, edges=False)
    assert (image[..., 3] > 0).sum() == 2 * 9
    assert (image[image[..., 3] == 0][:, :3] == 0).all()


def test_view_rotations_are_orthonormal_and_unknown_views_fail() -> None:
    for view in VIEWS:
        rotation = view_rotation(view)
        assert np.allclose(rotation @ rotation.T, np.eye(3))
        assert np.isclose(np.linalg.det(rotation), 1.0)
    with pytest.raises(VizInputError, match="unknown view 'side'"):
        view_rotation("side")


def test_a_single_point_and_a_flat_cloud_render() -> None:
    one = rasterize(np.zeros((1, 3)), np.array([[1, 2, 3]], dtype=np.uint8), width=20, height=20)
    assert (one[..., 3] > 0).sum() >= 1
    flat = np.c_[np.linspace(0, 1, 50), np.zeros(50), np.zeros(50)]
    image = rasterize(flat, np.full((50, 3), 7, dtype=np.uint8), view="front", width=60, height=40)
    assert (image[..., 3] > 0).sum() >= 40


def test_cutaway_drops_the_ceiling_and_the_walls_facing_the_camera() -> None:
    # A 10 x 10 x 3 box: points on the floor, the ceiling and the four walls.
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 10, 200)
    h = rng.uniform(0, 3, 200)
    floor = np.c_[u, u[::-1], np.zeros(200)]
    ceiling = np.c_[u, u[::-1], np.full(200, 3.0)]
    walls = {
        "x0": np.c_[np.zeros(200), u, h], "x1": np.c_[np.full(200, 10.0), u, h],
        "y0": np.c_[u, np.zeros(200), h], "y1": np.c_[u, np.full(200, 10.0), h],
    }  # fmt: skip
    xyz = np.concatenate([floor, ceiling, *walls.values()])
    part = np.repeat(["floor", "ceiling", *walls], 200)

    def kept(view: str) -> set[str]:
        keep = cutaway_mask(xyz, view)
        return {name for name in set(part) if keep[part == name].mean() > 0.5}

    assert kept("top") == {"floor", "x0", "x1", "y0", "y1"}
    assert kept("front") == {"floor", "x0", "x1", "y1"}  # the camera looks from -y
    towards = view_rotation("iso")[2]
    near = {("x1" if towards[0] > 0 else "x0"), ("y1" if towards[1] > 0 else "y0")}
    assert kept("iso") == {"floor", "x0", "x1", "y0", "y1"} - near
