"""PNG renders: pixels drawn in palette colours; compare panels; views; CLI wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from stseg_viz.cli import main
from stseg_viz.colorize import CORRECT_COLOR, WRONG_COLOR
from stseg_viz.render import compare_scenes, render_scene


def _pixels(path: Path) -> np.ndarray:
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    return np.round(image[..., :3] * 255).astype(np.int64)


def _share_of(pixels: np.ndarray, color) -> float:
    return float((pixels == np.asarray(color)).all(axis=-1).mean())


def test_label_render_uses_the_palette(room: dict, tmp_path: Path) -> None:
    out = tmp_path / "label.png"
    coloring = render_scene(room["scene"], out, color_by="label", view="top")
    pixels = _pixels(out)
    non_white = (pixels != 255).any(axis=-1)
    assert non_white.mean() > 0.05
    # Every class in the scene is visible in its exact palette colour.
    for name, color, _ in coloring.legend:
        assert _share_of(pixels, color) > 1e-4, f"{name} {color} not drawn"
    # Most drawn pixels are exactly palette colours (the rest: outlines, legend text, title).
    palette = np.array([color for _, color, _ in coloring.legend])
    exact = (pixels[non_white][:, None, :] == palette[None]).all(-1).any(-1)
    assert exact.mean() > 0.7


@pytest.mark.parametrize("view", ["top", "iso", "front"])
def test_every_view_draws_the_scene(room: dict, tmp_path: Path, view: str) -> None:
    out = tmp_path / f"{view}.png"
    render_scene(room["scene"], out, color_by="rgb", view=view, legend=False, title="x")
    assert ((_pixels(out) != 255).any(axis=-1)).mean() > 0.03


def test_compare_shows_prediction_truth_and_errors(room: dict, tmp_path: Path) -> None:
    out = tmp_path / "compare.png"
    result = compare_scenes(room["pred"], room["scene"], out)
    expected = float((room["pred_labels"] == room["cloud"].labels).mean())
    assert result["accuracy"] == pytest.approx(expected)
    pixels = _pixels(out)
    assert _share_of(pixels, CORRECT_COLOR) > 0.01
    assert _share_of(pixels, WRONG_COLOR) > 0.001


def test_cli_commands_write_their_files(room: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    scene, pred = str(room["scene"]), str(room["pred"])
    for args, out in [
        (["render", scene, "--color-by", "error", "--labels", pred, "--view", "front"], "r.png"),
        (["export", scene, "--color-by", "instance"], "e.ply"),
        (["compare", pred, scene, "--cutaway"], "c.png"),
        (["html", scene, "--labels", pred, "--max-points", "500"], "v.html"),
    ]:
        result = runner.invoke(main, [*args, "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
        assert (tmp_path / out).stat().st_size > 0
    assert (
        "accuracy"
        in runner.invoke(main, ["compare", pred, scene, "--out", str(tmp_path / "c2.png")]).output
    )
