"""Clustering of instance embeddings with HDBSCAN (scikit-learn), and instances from clusters.

`hdbscan_clusters` is the raw step (one call of scikit-learn's HDBSCAN); `instances_from_clusters`
turns cluster ids into `Instances` with a majority-vote class and a confidence score. The full
inference strategies (per point as the original, or the faster per voxel and per class) are in
`ssen_instance.grouping`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import HDBSCAN

from ssen_instance.errors import InstanceInputError
from ssen_instance.instances import Instances

IGNORE_LABEL = 255
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterParams:
    """HDBSCAN parameters (SSEN defaults: minimum cluster size 200, a single cluster allowed).

    `cluster_selection_epsilon` defaults to 0.5, half the push margin of the loss (instance means
    are trained >= 1.0 apart): scikit-learn's HDBSCAN, when it selects the single root cluster,
    labels only the points denser than its densest split (measured: exactly `min_cluster_size` of
    a 400-point blob, the rest noise), while an epsilon keeps every point within it.

    What runs on real scenes is epsilon 0, though: with NumPy 2, scikit-learn's epsilon search
    raises a TypeError on most trees with several clusters (scikit-learn issue #33219; seen with
    scikit-learn 1.9.1 and NumPy 2.4), and `hdbscan_clusters` then fits again without it.
    Measured on the 20 held-out synthetic rooms (demo run, `cell`): every room takes the
    fallback, so an explicit epsilon 0 gives the same AP (0.394 / 0.640 / 0.804); with a working
    epsilon search (the standalone `hdbscan` package, same parameters) 0.5 merges neighbouring
    objects (AP50 0.127) and 0.3 still costs AP50 0.46. So the fallback is the better behaviour here, and epsilon only acts
    where a scene holds one cluster.
    """

    min_cluster_size: int = 200
    min_samples: int | None = None
    cluster_selection_epsilon: float = 0.5
    cluster_selection_method: str = "eom"
    allow_single_cluster: bool = True
    leaf_size: int = 40

    def __post_init__(self) -> None:
        if self.min_cluster_size < 2:
            raise InstanceInputError(f"min_cluster_size must be >= 2, got {self.min_cluster_size}")
        if self.min_samples is not None and self.min_samples < 1:
            raise InstanceInputError(f"min_samples must be >= 1, got {self.min_samples}")
        if not self.cluster_selection_epsilon >= 0.0:
            raise InstanceInputError(
                f"cluster_selection_epsilon must be >= 0, got {self.cluster_selection_epsilon}"
            )
        if self.cluster_selection_method not in ("eom", "leaf"):
            raise InstanceInputError(
                f"cluster_selection_method must be 'eom' or 'leaf', got {self.cluster_selection_method!r}"
            )


def check_embeddings(embeddings: np.ndarray) -> np.ndarray:
    """float64 [N, D] view of `embeddings`; raises on a wrong shape or NaN / inf rows."""
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2:
        raise InstanceInputError(f"embeddings must be [N, D], got shape {emb.shape}")
    finite = np.isfinite(emb).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InstanceInputError(
            f"embeddings contain NaN or inf in {bad.size} of {emb.shape[0]} rows "
            f"(first row {int(bad[0])}); the model diverged or its input was not finite"
        )
    return emb


def hdbscan_clusters(
    embeddings: np.ndarray, params: ClusterParams | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster embeddings [N, D] -> (cluster ids int64 [N], -1 = noise; membership prob. [N]).

    Fewer points than `min_cluster_size` (including none) gives all noise.
    """
    params = params or ClusterParams()
    emb = check_embeddings(embeddings)
    n = emb.shape[0]
    min_samples = params.min_samples or params.min_cluster_size
    if n < max(params.min_cluster_size, min_samples, 2):
        return np.full(n, -1, dtype=np.int64), np.zeros(n)
    try:
        return _fit(emb, params, params.cluster_selection_epsilon)
    except TypeError:
        # scikit-learn's epsilon search fails ("only 0-dimensional arrays can be converted") on
        # most multi-cluster trees under NumPy 2 (scikit-learn #33219); without the epsilon the
        # fit is well defined (see ClusterParams). Warned once per process, not per scene.
        _warn_epsilon_fallback()
        return _fit(emb, params, 0.0)


@functools.cache
def _warn_epsilon_fallback() -> None:
    log.warning(
        "scikit-learn's HDBSCAN epsilon search failed (scikit-learn issue #33219); clustering "
        "without cluster_selection_epsilon wherever it does (logged once)"
    )


def _fit(emb: np.ndarray, params: ClusterParams, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    model = HDBSCAN(
        min_cluster_size=params.min_cluster_size,
        min_samples=params.min_samples,
        cluster_selection_epsilon=epsilon,
        cluster_selection_method=params.cluster_selection_method,
        allow_single_cluster=params.allow_single_cluster,
        leaf_size=params.leaf_size,
        copy=True,
    )
    model.fit(emb)
    return model.labels_.astype(np.int64), model.probabilities_.astype(np.float64)


def instances_from_clusters(
    cluster_ids: np.ndarray,
    semantic: np.ndarray,
    probabilities: np.ndarray | None = None,
    *,
    allowed_labels: tuple[int, ...] | None = None,
    hypotheses: int = 1,
    min_share: float = 0.0,
    size_score: bool = False,
) -> Instances:
    """Instances from a dense cluster map.

    cluster_ids:   int [N], -1 = no cluster, else 0..C-1 (gaps allowed).
    semantic:      int [N] predicted class of each point (255 = ignore, never voted for).
    probabilities: float [N] HDBSCAN membership in [0, 1], or None (treated as 1).
    allowed_labels: classes an instance may take (the instance classes); the vote runs over these.
    Each instance's label is the majority vote of its points (ties -> lowest id), and its score is
    (fraction of the points voting for that label) x (mean membership probability).
    Clusters with no valid vote are dropped.
    hypotheses > 1: a cluster also yields its mask again with each of its next most voted classes
    (up to `hypotheses` classes in all, each voted for by more than `min_share` of its points),
    scored the same way (the ScanNet benchmark allows overlapping masks; a semantic network that
    splits an object between two classes then still gets it right in one of them).
    size_score: scores are multiplied by log(points of the cluster), so that the fragments of an
    over-split object (small, every point voting for one class, vote share 1) rank below whole
    objects.
    """
    if hypotheses < 1:
        raise InstanceInputError(f"hypotheses must be >= 1, got {hypotheses}")
    cluster_ids = np.asarray(cluster_ids, dtype=np.int64)
    semantic = np.asarray(semantic, dtype=np.int64)
    n = cluster_ids.size
    if semantic.shape != (n,):
        raise InstanceInputError(f"semantic has shape {semantic.shape}, expected ({n},)")
    prob = np.ones(n) if probabilities is None else np.asarray(probabilities, dtype=np.float64)
    member = cluster_ids >= 0
    if not member.any():
        return Instances.empty(n)
    num_labels = int(max(semantic.max(initial=0), IGNORE_LABEL)) + 1
    valid = (semantic >= 0) & (semantic < num_labels) & (semantic != IGNORE_LABEL)
    if allowed_labels is not None:
        valid &= np.isin(semantic, np.asarray(allowed_labels))
    _, compact = np.unique(cluster_ids[member], return_inverse=True)
    c = int(compact.max()) + 1
    cid = np.full(n, -1, dtype=np.int64)
    cid[member] = compact
    votes = np.zeros((c, num_labels), dtype=np.int64)
    voting = member & valid
    np.add.at(votes, (cid[voting], semantic[voting]), 1)
    sizes = np.bincount(cid[member], minlength=c)
    prob_mean = np.bincount(cid[member], weights=prob[member], minlength=c) / sizes
    label = votes.argmax(axis=1)
    keep = votes.max(axis=1) > 0
    if size_score:
        prob_mean = prob_mean * np.log(np.maximum(sizes, 1))
    score = votes.max(axis=1) / sizes * prob_mean
    old_to_new = np.full(c, -1, dtype=np.int64)
    old_to_new[keep] = np.arange(int(keep.sum()))
    dense = np.where(cid >= 0, old_to_new[np.maximum(cid, 0)], -1)
    primary = Instances.from_ids(dense, label[keep], score[keep])
    if hypotheses == 1:
        return primary
    masks, labels, scores = list(primary.masks), list(primary.labels), list(primary.scores)
    kept = np.flatnonzero(keep)
    # classes by decreasing votes (stable: ties keep the lower id first, like argmax)
    order = np.argsort(-votes[kept], axis=1, kind="stable")[:, 1:hypotheses]
    for row, cluster in enumerate(kept):
        for cls in order[row]:
            share = votes[cluster, cls] / sizes[cluster]
            if votes[cluster, cls] == 0 or share <= min_share:
                break
            masks.append(primary.masks[row])
            labels.append(int(cls))
            scores.append(share * prob_mean[cluster])
    return Instances(masks, np.asarray(labels), np.asarray(scores), n)
