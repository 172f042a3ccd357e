"""Colour maps: official ScanNet values, palette shapes, instance, embedding and error colours."""

from __future__ import annotations

import numpy as np
import pytest

from stseg_data.labels import SCANNET_CLASS_NAMES, SCANNET_NYU40_IDS
from stseg_viz.colorize import (
    CORRECT_COLOR,
    ERROR_IGNORED_COLOR,
    NO_INSTANCE_COLOR,
    WRONG_COLOR,
    colorize_embeddings,
    colorize_errors,
    colorize_instances,
    colorize_labels,
    instance_color_table,
)
from stseg_viz.errors import PaletteError, VizInputError
from stseg_viz.palettes import (
    IGNORE_COLOR,
    NYU40_COLORS,
    PALETTE_NAMES,
    SCANNET20_COLORS,
    get_palette,
)


def test_nyu40_palette_has_scannets_official_values() -> None:
    assert NYU40_COLORS.shape == (41, 3) and NYU40_COLORS.dtype == np.uint8
    assert tuple(NYU40_COLORS[0]) == (0, 0, 0)  # unannotated
    assert tuple(NYU40_COLORS[1]) == (174, 199, 232)  # wall
    assert tuple(NYU40_COLORS[2]) == (152, 223, 138)  # floor
    assert tuple(NYU40_COLORS[28]) == (158, 218, 229)  # shower curtain
    assert tuple(NYU40_COLORS[33]) == (44, 160, 44)  # toilet
    assert tuple(NYU40_COLORS[39]) == (82, 84, 163)  # other furniture
    assert tuple(NYU40_COLORS[40]) == (100, 85, 144)  # other prop


def test_nyu40_palette_takes_raw_ids() -> None:
    palette = get_palette("nyu40")
    assert len(palette) == 41 and palette.class_names[0] == "unannotated"
    assert palette.class_names[33] == "toilet" and tuple(palette.colors[33]) == (44, 160, 44)


def test_scannet20_colours_are_the_nyu40_colours_of_their_ids() -> None:
    assert SCANNET20_COLORS.shape == (20, 3)
    for k, nyu_id in enumerate(SCANNET_NYU40_IDS):
        assert tuple(SCANNET20_COLORS[k]) == tuple(NYU40_COLORS[nyu_id])
    palette = get_palette("scannet20")
    assert palette.class_names == tuple(SCANNET_CLASS_NAMES)
    assert tuple(palette.colors[SCANNET_CLASS_NAMES.index("refrigerator")]) == (255, 127, 14)


@pytest.mark.parametrize("name", PALETTE_NAMES)
def test_every_palette_is_complete_and_distinct(name: str) -> None:
    palette = get_palette(name)
    assert palette.colors.shape == (len(palette.class_names), 3)
    assert len({tuple(c) for c in palette.colors}) == len(palette)  # no two classes alike
    assert len(palette) in (20, 41, 13, 12)


def test_unknown_palette_is_an_input_error() -> None:
    with pytest.raises(PaletteError, match="unknown palette 'nope'"):
        get_palette("nope")


def test_label_colours_and_ignored_points() -> None:
    palette = get_palette("scannet20")
    colors = colorize_labels(np.array([0, 1, 255, -1, 19]), palette)
    assert colors.tolist() == [
        list(SCANNET20_COLORS[0]),
        list(SCANNET20_COLORS[1]),
        list(IGNORE_COLOR),
        list(IGNORE_COLOR),
        list(SCANNET20_COLORS[19]),
    ]


def test_label_ids_outside_the_palette_name_the_source() -> None:
    with pytest.raises(
        PaletteError, match=r"pred\.txt: label ids 20, 37 are outside the scannet20"
    ):
        colorize_labels(np.array([0, 20, 37, 20]), get_palette("scannet20"), where="pred.txt")


def test_instance_colours_are_distinct_and_background_is_grey() -> None:
    table = instance_color_table(60)
    assert len({tuple(c) for c in table}) == 60
    ids = np.array([0, 5, 5, 9, -1, 1000])
    colors = colorize_instances(ids)
    assert tuple(colors[0]) == NO_INSTANCE_COLOR and tuple(colors[4]) == NO_INSTANCE_COLOR
    assert (colors[1] == colors[2]).all()
    assert len({tuple(c) for c in colors[[1, 3, 5]]}) == 3


def test_error_colours() -> None:
    pred = np.array([1, 2, 3, 4])
    truth = np.array([1, 0, 255, -1])
    colors = colorize_errors(pred, truth)
    assert [tuple(c) for c in colors] == [
        CORRECT_COLOR,
        WRONG_COLOR,
        ERROR_IGNORED_COLOR,
        ERROR_IGNORED_COLOR,
    ]
    with pytest.raises(VizInputError, match="3 labels but the ground truth has 4"):
        colorize_errors(pred[:3], truth)


def test_embedding_colours_follow_the_principal_axis() -> None:
    rng = np.random.default_rng(0)
    t = rng.uniform(-1, 1, 500)
    direction = np.array([3.0, -1.0, 2.0, 0.5, 1.0])
    embeddings = t[:, None] * direction + rng.normal(0, 0.01, (500, 5))
    colors = colorize_embeddings(embeddings).astype(float)
    # The first channel is the first principal component: monotone in t (up to the PCA sign).
    corr = np.corrcoef(colors[:, 0], t)[0, 1]
    assert abs(corr) > 0.99
    assert colors.min() >= 0 and colors.max() <= 255
    # Reference: the first principal axis from the covariance eigenvectors.
    centred = embeddings - embeddings.mean(0)
    _, vectors = np.linalg.eigh(np.cov(centred.T))
    reference = centred @ vectors[:, -1]
    assert abs(np.corrcoef(colors[:, 0], reference)[0, 1]) > 0.99


def test_embedding_colours_reject_bad_arrays() -> None:
    with pytest.raises(VizInputError, match="NaN"):
        colorize_embeddings(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(VizInputError, match="non-empty"):
        colorize_embeddings(np.zeros((0, 4)))
    two_dims = colorize_embeddings(np.random.default_rng(1).normal(size=(50, 2)))
    assert (two_dims[:, 2] == 128).all()  # missing third component: constant mid-grey
