"""HDBSCAN clustering, instances from clusters, and the three grouping strategies."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from sklearn.cluster import HDBSCAN

from ssen_instance.cluster import (
    ClusterParams,
    complete_single_cluster,
    hdbscan_clusters,
    instances_from_clusters,
)
from ssen_instance.errors import InstanceInputError
from ssen_instance.grouping import GroupingConfig, group_instances

CHAIR, SOFA, TABLE, WALL = 4, 5, 6, 0  # training ids


def _blobs(
    rng: np.random.Generator, sizes: list[int], dim: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    centres = np.eye(dim)[: len(sizes)] * 3.0
    emb = np.concatenate([c + 0.05 * rng.standard_normal((s, dim)) for c, s in zip(centres, sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return emb, truth


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.stack([a, b]), axis=1)
    return pairs.shape[1] == np.unique(a).size == np.unique(b).size


def test_hdbscan_separates_blobs() -> None:
    emb, truth = _blobs(np.random.default_rng(0), [300, 250, 220])
    ids, prob = hdbscan_clusters(emb)
    assert _same_partition(ids, truth) and (ids >= 0).all()
    assert ((prob >= 0) & (prob <= 1)).all()


def test_single_cluster_allowed_and_too_few_points() -> None:
    emb, _ = _blobs(np.random.default_rng(1), [400])
    ids, prob = hdbscan_clusters(emb)
    assert (ids == 0).all() and ((prob > 0) & (prob <= 1)).all()
    # scikit-learn's own labelling of a lone cluster (radius 0): only min_cluster_size points.
    ids_sklearn, _ = hdbscan_clusters(emb, ClusterParams(single_cluster_radius=0.0))
    assert (ids_sklearn == 0).sum() == 200 and (ids_sklearn[ids_sklearn != 0] == -1).all()
    ids_few, prob_few = hdbscan_clusters(emb[:150])  # fewer points than min_cluster_size 200
    assert (ids_few == -1).all() and (prob_few == 0).all()
    assert hdbscan_clusters(np.zeros((0, 8)))[0].shape == (0,)
    ids_small, _ = hdbscan_clusters(emb[:150], ClusterParams(min_cluster_size=20))
    assert (ids_small == 0).all()


ISSUE = "scikit-learn's HDBSCAN changed under ssen_instance.cluster (see issue #26): re-measure"


def test_pinned_scikit_learn_hdbscan_behaviour() -> None:
    """What the clustering default relies on, on fixed inputs (scikit-learn's HDBSCAN directly).

    If one of these fails, scikit-learn changed: re-measure `ClusterParams`' defaults (issue #26).
    """

    def labels(emb: np.ndarray, epsilon: float) -> np.ndarray:
        model = HDBSCAN(min_cluster_size=20, cluster_selection_epsilon=epsilon,
                        allow_single_cluster=True, copy=True)  # fmt: skip
        return model.fit(emb).labels_

    two, truth = _blobs(np.random.default_rng(0), [60, 40])
    one, _ = _blobs(np.random.default_rng(1), [60])
    got_two = labels(two, 0.0)
    assert _same_partition(got_two, truth) and (got_two >= 0).all(), ISSUE
    # a lone cluster: labelled down to min_cluster_size points (what complete_single_cluster fixes)
    assert np.bincount(labels(one, 0.0) + 1).tolist() == [40, 20], ISSUE
    # scikit-learn #33219 (NumPy 2): an epsilon that merges clusters raises instead of merging;
    # when this stops raising, a working epsilon is available and the default must be re-measured.
    with pytest.raises(TypeError, match="0-dimensional"):
        labels(two, 5.0)
        pytest.fail(f"{ISSUE}: epsilon search no longer raises (scikit-learn #33219 fixed?)")


def test_complete_single_cluster_against_a_reference() -> None:
    rng = np.random.default_rng(7)
    emb = rng.standard_normal((300, 4)) * 0.3
    ids = np.where(np.arange(300) < 50, 3, -1)  # a lone cluster (id 3) of 50 labelled points
    prob = np.where(ids >= 0, 1.0, 0.0)
    got_ids, got_prob = complete_single_cluster(emb, ids, prob, 0.5)
    # reference, written out point by point
    centre = emb[:50].mean(axis=0)
    core_reach = max(float(np.linalg.norm(emb[i] - centre)) for i in range(50))
    for i in range(300):
        d = float(np.linalg.norm(emb[i] - centre))
        if i < 50:
            assert got_ids[i] == 3 and got_prob[i] == 1.0
        elif d <= 0.5:
            assert got_ids[i] == 3 and got_prob[i] == pytest.approx(min(1.0, core_reach / d))
        else:
            assert got_ids[i] == -1 and got_prob[i] == 0.0
    assert 50 < (got_ids == 3).sum() < 300  # the radius both adds and leaves out points
    assert (ids[50:] == -1).all()  # inputs untouched
    # two clusters, all noise, or radius 0: unchanged
    for case_ids, radius in ((np.where(np.arange(300) < 25, 0, 1), 0.5), (np.full(300, -1), 0.5),
                             (ids, 0.0)):  # fmt: skip
        out_ids, out_prob = complete_single_cluster(emb, case_ids, prob, radius)
        assert (out_ids == case_ids).all() and (out_prob == prob).all()


def test_lone_blob_keeps_its_points_and_drops_far_outliers() -> None:
    rng = np.random.default_rng(3)
    blob, _ = _blobs(rng, [400])
    far = blob[:30] + 0.6 * rng.choice([-1.0, 1.0], (30, 8))  # ~1.7 away: another object's place
    ids, _ = hdbscan_clusters(np.r_[blob, far])
    assert (ids[:400] == 0).all() and (ids[400:] == -1).all()
    with pytest.raises(InstanceInputError, match="single_cluster_radius"):
        ClusterParams(single_cluster_radius=-1.0)


def test_working_and_failing_epsilon() -> None:
    # Given epsilon > 0 is scikit-learn's: a lone blob (its epsilon path works) is labelled by it,
    emb, _ = _blobs(np.random.default_rng(1), [400])
    ids, _ = hdbscan_clusters(emb, ClusterParams(cluster_selection_epsilon=0.5))
    assert (ids == 0).all()
    # and where scikit-learn fails (#33219) it is one clear error, not a silent refit.
    two, _ = _blobs(np.random.default_rng(0), [300, 250])
    with pytest.raises(InstanceInputError, match=r"epsilon 5: .*#33219.*use epsilon 0"):
        hdbscan_clusters(two, ClusterParams(cluster_selection_epsilon=5.0))
    assert ClusterParams().cluster_selection_epsilon == 0.0


def test_nan_embeddings_are_a_clear_error() -> None:
    emb = np.zeros((300, 8))
    emb[17, 3] = np.nan
    with pytest.raises(InstanceInputError, match=r"NaN or inf in 1 of 300 rows \(first row 17\)"):
        hdbscan_clusters(emb)
    with pytest.raises(InstanceInputError, match="NaN"):
        group_instances(emb, np.full(300, CHAIR))


def test_bad_params() -> None:
    with pytest.raises(InstanceInputError, match="min_cluster_size"):
        ClusterParams(min_cluster_size=1)
    with pytest.raises(InstanceInputError, match="strategy"):
        GroupingConfig(strategy="fast")  # type: ignore[arg-type]
    with pytest.raises(InstanceInputError, match="score"):
        GroupingConfig(score="membership")  # type: ignore[arg-type]


def test_score_is_the_vote_share_unless_membership_is_asked_for() -> None:
    rng = np.random.default_rng(4)
    emb, truth = _blobs(rng, [150, 150])
    sem = np.array([CHAIR, TABLE])[truth]
    sem[:30] = TABLE  # 30 of the chair's 150 voxels predicted table: vote share 0.8
    params = ClusterParams(min_cluster_size=100)
    vote = group_instances(emb, sem, config=GroupingConfig("voxel", params, score="vote"))
    both = group_instances(
        emb, sem, config=GroupingConfig("voxel", params, score="vote_membership")
    )
    assert sorted(vote.scores.tolist()) == pytest.approx([0.8, 1.0])
    assert [m.tolist() for m in vote.masks] == [m.tolist() for m in both.masks]
    assert (both.scores <= vote.scores + 1e-12).all()
    # the default ranks by vote share x log(points) (over-split fragments no longer outrank objects)
    assert GroupingConfig().score == "vote_size"


def test_instances_from_clusters_majority_and_score() -> None:
    cluster = np.array([0, 0, 0, 0, -1, 5, 5, 5])
    sem = np.array([CHAIR, CHAIR, TABLE, 255, CHAIR, TABLE, TABLE, TABLE])
    prob = np.array([1, 1, 1, 0.6, 1, 0.5, 0.5, 0.5])
    inst = instances_from_clusters(cluster, sem, prob)
    assert [m.tolist() for m in inst.masks] == [[0, 1, 2, 3], [5, 6, 7]]
    assert inst.labels.tolist() == [CHAIR, TABLE]
    assert inst.scores == pytest.approx([0.5 * 0.9, 1.0 * 0.5])  # vote share x mean membership
    assert len(instances_from_clusters(np.full(4, -1), np.zeros(4))) == 0
    # a cluster with only ignored / disallowed votes is dropped
    only_wall = instances_from_clusters(
        np.zeros(3), np.array([WALL, 255, WALL]), allowed_labels=(CHAIR,)
    )
    assert len(only_wall) == 0


def test_class_hypotheses_repeat_the_mask_with_the_next_classes() -> None:
    # cluster 0: 6 chair, 3 table, 1 sofa votes; cluster 1: all table
    cluster = np.array([0] * 10 + [1] * 4)
    sem = np.array([CHAIR] * 6 + [TABLE] * 3 + [SOFA] + [TABLE] * 4)
    one = instances_from_clusters(cluster, sem)
    assert one.labels.tolist() == [CHAIR, TABLE] and one.scores == pytest.approx([0.6, 1.0])
    three = instances_from_clusters(cluster, sem, hypotheses=3)
    assert three.labels.tolist() == [CHAIR, TABLE, TABLE, SOFA]
    assert three.scores == pytest.approx([0.6, 1.0, 0.3, 0.1])
    assert [m.tolist() for m in three.masks[2:]] == [list(range(10))] * 2
    # a share at or under min_share is not repeated (and no class with zero votes ever is)
    some = instances_from_clusters(cluster, sem, hypotheses=3, min_share=0.1)
    assert some.labels.tolist() == [CHAIR, TABLE, TABLE]
    with pytest.raises(InstanceInputError, match="hypotheses"):
        instances_from_clusters(cluster, sem, hypotheses=0)
    with pytest.raises(InstanceInputError, match="class_hypotheses"):
        GroupingConfig(class_hypotheses=0)


def test_size_score_ranks_fragments_below_whole_objects() -> None:
    # a 200-point object with vote share 0.9 and a 20-point fragment with share 1
    cluster = np.array([0] * 200 + [1] * 20)
    sem = np.array([CHAIR] * 180 + [TABLE] * 20 + [CHAIR] * 20)
    plain = instances_from_clusters(cluster, sem)
    sized = instances_from_clusters(cluster, sem, size_score=True)
    assert plain.scores == pytest.approx([0.9, 1.0])
    assert sized.scores == pytest.approx([0.9 * np.log(200), 1.0 * np.log(20)])
    assert sized.scores[0] > sized.scores[1]
    rng = np.random.default_rng(2)
    emb, truth = _blobs(rng, [150, 150])
    config = GroupingConfig("voxel", ClusterParams(min_cluster_size=100), score="vote_size")
    inst = group_instances(emb, np.array([CHAIR, TABLE])[truth], config=config)
    assert inst.scores == pytest.approx([np.log(150)] * 2)


@pytest.mark.parametrize("strategy", ["point", "voxel", "voxel_class", "cell"])
def test_strategies_find_every_instance(strategy: str) -> None:
    rng = np.random.default_rng(2)
    # 3 objects of 150/120/100 voxels, 2 points per voxel, plus wall voxels that must be dropped.
    emb, truth = _blobs(rng, [150, 120, 100, 200])
    sem = np.array([CHAIR, TABLE, CHAIR, WALL])[truth]
    inverse = np.repeat(np.arange(emb.shape[0]), 2)
    coords = np.stack([np.arange(emb.shape[0]), np.zeros(emb.shape[0]), truth * 10], 1).astype(int)
    cfg = GroupingConfig(strategy=strategy, params=ClusterParams(min_cluster_size=100))  # type: ignore[arg-type]
    inst = group_instances(emb, sem, inverse, cfg, coords)
    assert inst.num_points == inverse.size and len(inst) == 3
    got = sorted((int(lab), m.size) for lab, m in zip(inst.labels, inst.masks))
    assert got == [(CHAIR, 200), (CHAIR, 300), (TABLE, 240)]
    point_truth = truth[inverse]
    for m in inst.masks:
        assert np.unique(point_truth[m]).size == 1  # pure


def test_only_background_and_no_points() -> None:
    emb, _ = _blobs(np.random.default_rng(3), [300])
    coords = np.zeros((300, 3), int)
    assert len(group_instances(emb, np.full(300, WALL), voxel_coords=coords)) == 0
    empty = group_instances(np.zeros((0, 8)), np.zeros(0, np.int64), voxel_coords=np.zeros((0, 3)))
    assert len(empty) == 0 and empty.num_points == 0
    with pytest.raises(InstanceInputError, match="inverse"):
        group_instances(emb, np.full(300, CHAIR), np.array([0, 300]))
    with pytest.raises(InstanceInputError, match="voxel_semantic"):
        group_instances(emb, np.full(10, CHAIR))
    with pytest.raises(InstanceInputError, match="voxel coordinates"):
        group_instances(emb, np.full(300, CHAIR), config=GroupingConfig(strategy="cell"))


def test_cell_strategy_matches_point_strategy_on_clean_embeddings() -> None:
    # Cells of 3 voxels along x: the cell strategy must give the same partition as per point.
    rng = np.random.default_rng(5)
    emb, truth = _blobs(rng, [240, 300, 210])
    sem = np.array([CHAIR, TABLE, CHAIR])[truth]
    coords = np.stack([np.arange(truth.size), truth * 5, np.zeros(truth.size)], 1).astype(int)
    params = ClusterParams(min_cluster_size=150)
    point = group_instances(emb, sem, config=GroupingConfig("point", params))
    cell = group_instances(emb, sem, None, GroupingConfig("cell", params), coords)
    assert _same_partition(point.to_ids(), cell.to_ids())
    assert sorted(point.labels.tolist()) == sorted(cell.labels.tolist())


def test_degenerate_embeddings_do_not_crash() -> None:
    # Two groups 0.01 apart: two clusters with epsilon 0; epsilon 0.5 would merge them, where
    # scikit-learn raises (#33219), reported as an input error.
    emb = np.r_[np.zeros((30, 8)), np.full((30, 8), 0.01)]
    ids, prob = hdbscan_clusters(emb, ClusterParams(min_cluster_size=5))
    assert ids.shape == (60,) and np.isfinite(prob).all()
    assert np.unique(ids[:30]).size == 1 and np.unique(ids[30:]).size == 1 and ids[0] != ids[30]
    with pytest.raises(InstanceInputError, match="#33219"):
        hdbscan_clusters(emb, ClusterParams(min_cluster_size=5, cluster_selection_epsilon=0.5))


def test_voxel_class_gets_whole_one_object_sets() -> None:
    # One object per class: each per-class HDBSCAN run holds a lone cluster.
    emb, truth = _blobs(np.random.default_rng(6), [300, 260])
    sem = np.array([CHAIR, TABLE])[truth]
    params = ClusterParams(min_cluster_size=100)
    inst = group_instances(emb, sem, config=GroupingConfig("voxel_class", params))
    assert sorted(m.size for m in inst.masks) == [260, 300]
    # scikit-learn's labelling alone keeps min_cluster_size of each (the AP lost before epsilon 0)
    raw = replace(params, single_cluster_radius=0.0)
    cut = group_instances(emb, sem, config=GroupingConfig("voxel_class", raw))
    assert sorted(m.size for m in cut.masks) == [100, 100]


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_cli_epsilon_default_is_the_library_default(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ssen_instance", command, "--help"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    text = " ".join(result.stdout.split())  # unwrap Click's help columns
    option = re.search(r"--cluster-epsilon FLOAT (.*?)\[default: ([^\]]*)\]", text)
    assert option is not None, result.stdout
    assert "#33219" in option[1] and float(option[2]) == ClusterParams().cluster_selection_epsilon
