"""voxelize: against a plain-Python reference (hypothesis), plus RELIABILITY F9-F13, G1-G7."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stseg_data.errors import StsegInputError
from stseg_data.voxelize import floor_coords, voxelize

IGNORE = 255


def reference(xyz, size, labels):
    """Obviously-correct voxelization: a dict from floored coordinate tuple to point indices."""
    groups = {}
    for i, point in enumerate(xyz.tolist()):
        key = tuple(math.floor(c / size) for c in point)
        groups.setdefault(key, []).append(i)
    keys = sorted(groups)
    index = [groups[k][0] for k in keys]
    voxel_labels = [
        labels[g[0]] if len({labels[i] for i in g}) == 1 else IGNORE for g in map(groups.get, keys)
    ]
    inverse = [0] * len(xyz)
    for row, k in enumerate(keys):
        for i in groups[k]:
            inverse[i] = row
    return np.array(keys), np.array(index), np.array(voxel_labels), np.array(inverse)


@st.composite
def lattice_clouds(draw, dim=3):
    """Integer lattice cells plus fractional offsets in [0.05, 0.95] of a voxel: no float ties."""
    n = draw(st.integers(1, 60))
    cells = draw(st.lists(st.tuples(*[st.integers(-4, 4)] * dim), min_size=n, max_size=n))
    fracs = draw(st.lists(st.tuples(*[st.floats(0.05, 0.95)] * dim), min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    size = draw(st.sampled_from([0.02, 0.05, 0.3, 1.0, 2.5]))
    xyz = (np.array(cells, dtype=np.float64) + np.array(fracs)) * size
    return xyz, size, np.array(labels)


@settings(max_examples=150, deadline=None)
@given(lattice_clouds())
def test_matches_reference(cloud):
    xyz, size, labels = cloud
    feats = np.arange(len(xyz) * 2, dtype=np.float32).reshape(-1, 2)
    out = voxelize(xyz, size, features=feats, labels=labels)
    keys, index, voxel_labels, inverse = reference(xyz, size, labels.tolist())
    np.testing.assert_array_equal(out.coords, keys)  # G2: one voxel per unique floored coordinate
    np.testing.assert_array_equal(out.index, index)  # representative = lowest original index
    np.testing.assert_array_equal(out.labels, voxel_labels)  # unanimous, else ignore
    np.testing.assert_array_equal(out.inverse, inverse)
    np.testing.assert_array_equal(out.features, feats[index])
    assert out.coords.dtype == np.int32 and out.inverse.dtype == np.int64


@settings(max_examples=100, deadline=None)
@given(lattice_clouds(), st.integers(0, 2**32 - 1))
def test_point_lies_in_its_voxel_and_permutation_invariance(cloud, seed):
    xyz, size, labels = cloud
    out = voxelize(xyz, size, labels=labels)
    lower = out.coords[out.inverse] * size  # G1
    assert np.all(xyz >= lower - 1e-9) and np.all(xyz < lower + size + 1e-9)
    perm = np.random.default_rng(seed).permutation(len(xyz))
    shuffled = voxelize(xyz[perm], size, labels=labels[perm])  # G3 / F4
    np.testing.assert_array_equal(shuffled.coords, out.coords)
    np.testing.assert_array_equal(shuffled.labels, out.labels)
    np.testing.assert_array_equal(shuffled.inverse, out.inverse[perm])
    # the representative is the voxel's point that comes first in the given order
    np.testing.assert_array_equal(shuffled.inverse[shuffled.index], np.arange(len(out)))
    first = np.full(len(out), len(xyz))
    np.minimum.at(first, shuffled.inverse, np.arange(len(xyz)))
    np.testing.assert_array_equal(shuffled.index, first)


@settings(max_examples=60, deadline=None)
@given(lattice_clouds(), st.tuples(*[st.integers(-50, 50)] * 3))
def test_whole_voxel_translation_and_idempotence(cloud, shift):
    xyz, size, _ = cloud
    out = voxelize(xyz, size)
    moved = voxelize(xyz + np.array(shift) * size, size)  # G4
    np.testing.assert_array_equal(moved.coords, out.coords + np.array(shift))
    centres = (out.coords + 0.5) * size  # G5
    np.testing.assert_array_equal(voxelize(centres, size).coords, out.coords)


def test_bitwise_repeatable():  # F3 / F4
    rng = np.random.default_rng(0)
    xyz, feats, labels = rng.random((5000, 3)), rng.random((5000, 4)), rng.integers(0, 5, 5000)
    first = voxelize(xyz, 0.05, features=feats, labels=labels)
    for _ in range(10):
        again = voxelize(xyz, 0.05, features=feats, labels=labels)
        for name in ("coords", "features", "labels", "inverse", "index"):
            assert np.array_equal(getattr(first, name), getattr(again, name))


def test_four_d_time_axis_keeps_frames_apart():
    xyz = np.array([[0.01, 0.01, 0.01, 0], [0.02, 0.02, 0.02, 0], [0.01, 0.01, 0.01, 1]])
    out = voxelize(xyz, 0.05, labels=np.array([1, 1, 2]))
    np.testing.assert_array_equal(out.coords, [[0, 0, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(out.labels, [1, 2])
    np.testing.assert_array_equal(out.inverse, [0, 0, 1])


def test_duplicate_points_conflicting_labels_ignore_and_lowest_index():  # F13 / D13
    xyz = np.zeros((4, 3)) + 0.5
    out = voxelize(
        xyz, 1.0, features=np.array([[4.0], [3.0], [2.0], [1.0]]), labels=np.array([2, 2, 5, 2])
    )
    assert (
        out.labels.tolist() == [IGNORE]
        and out.index.tolist() == [0]
        and out.features.tolist() == [[4.0]]
    )
    assert out.inverse.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_raises(bad):  # F9 / G6
    xyz = np.zeros((5, 3))
    xyz[2, 1] = bad
    with pytest.raises(
        StsegInputError, match="1 points with non-finite coordinates, first at index 2"
    ):
        voxelize(xyz, 0.1)


def test_empty_and_misaligned_inputs():  # F11
    with pytest.raises(StsegInputError, match="0 points"):
        voxelize(np.zeros((0, 3)), 0.1)
    with pytest.raises(StsegInputError, match="labels has 2 rows for 3 points"):
        voxelize(np.zeros((3, 3)), 0.1, labels=np.zeros(2))
    with pytest.raises(StsegInputError, match="positive"):
        voxelize(np.zeros((3, 3)), 0.0)


def test_int32_overflow_refused_before_cast():  # F10 / G7
    xyz = np.array([[0.0, 0.0, 0.0], [3e7, 0.0, 0.0]])
    with pytest.raises(StsegInputError, match="outside int32"):
        voxelize(xyz, 0.01)
    with pytest.raises(StsegInputError, match="outside int32"):
        floor_coords(xyz, 0.01)


def test_huge_extent_product_falls_back_to_lexsort():
    rng = np.random.default_rng(1)
    xyz = rng.uniform(-2e9, 2e9, size=(200, 3))  # extents ~4e9 per axis: product far above 2**63
    xyz = np.vstack([xyz, xyz[:10]])
    out = voxelize(xyz, 1.0)
    keys, index, _, inverse = reference(xyz, 1.0, [0] * len(xyz))
    np.testing.assert_array_equal(out.coords, keys)
    np.testing.assert_array_equal(out.index, index)
    np.testing.assert_array_equal(out.inverse, inverse)


def test_clip_bounds_around_centre_marks_removed_points():
    xyz = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [10.0, 0, 0]])
    out = voxelize(xyz, 0.5, clip_bounds=((-4, 4), None, None))
    # centre x = 5: keeps 1 < x < 9 -> points 1 and 2
    assert out.inverse.tolist() == [-1, 0, 1, -1]
    assert out.index.tolist() == [1, 2]
    with pytest.raises(StsegInputError, match="0 points left inside clip_bounds"):
        voxelize(xyz, 0.5, clip_bounds=((100, 200),))


def test_boundary_values_floor_like_numpy():
    # explicit float boundary case: points exactly on voxel faces go to the upper voxel
    xyz = np.array([[0.0, 0.1, -0.1], [0.2, 0.3, -0.3]])
    out = voxelize(xyz, 0.1)
    np.testing.assert_array_equal(out.coords[out.inverse], np.floor(xyz / 0.1).astype(np.int32))


def majority_reference(xyz, size, labels):
    """Per voxel (sorted keys): the most common non-ignored label, ties to the smaller, else IGNORE."""
    groups = {}
    for i, point in enumerate(xyz.tolist()):
        groups.setdefault(tuple(math.floor(c / size) for c in point), []).append(labels[i])
    out = []
    for key in sorted(groups):
        votes = [v for v in groups[key] if v != IGNORE]
        out.append(min(set(votes), key=lambda v: (-votes.count(v), v)) if votes else IGNORE)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.integers(0, 3),
            st.integers(0, 2),
            st.sampled_from([0, 1, 2, 7, IGNORE]),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_majority_labels_match_reference(rows):
    xyz = np.array([r[:3] for r in rows], dtype=np.float64) * 0.3 + 0.01
    labels = np.array([r[3] for r in rows], dtype=np.int64)
    out = voxelize(xyz, 0.5, labels=labels, label_mode="majority")
    assert out.labels.tolist() == majority_reference(xyz, 0.5, labels.tolist())


def test_majority_mode_on_a_mixed_voxel_and_an_ignored_one():
    xyz = np.array([[0.1, 0.1, 0.1]] * 5 + [[1.5, 0.1, 0.1]] * 2)
    labels = np.array([3, 5, 5, IGNORE, IGNORE, IGNORE, IGNORE])
    assert voxelize(xyz, 1.0, labels=labels, label_mode="majority").labels.tolist() == [5, IGNORE]
    assert voxelize(xyz, 1.0, labels=labels).labels.tolist() == [IGNORE, IGNORE]  # unanimous rule
    with pytest.raises(StsegInputError, match="label_mode"):
        voxelize(xyz, 1.0, labels=labels, label_mode="vote")
