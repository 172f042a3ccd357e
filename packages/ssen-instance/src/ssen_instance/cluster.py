"""Clustering of instance embeddings with HDBSCAN (scikit-learn), and instances from clusters.

`hdbscan_clusters` is the raw step (one call of scikit-learn's HDBSCAN); `instances_from_clusters`
turns cluster ids into `Instances` with a majority-vote class and a confidence score. The full
inference strategies (per point as the original, or the faster per voxel and per class) are in
`ssen_instance.grouping`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import HDBSCAN

from ssen_instance.errors import InstanceInputError
from ssen_instance.instances import Instances

IGNORE_LABEL = 255


@dataclass(frozen=True)
class ClusterParams:
    """HDBSCAN parameters (SSEN defaults: minimum cluster size 200, a single cluster allowed).

    `cluster_selection_epsilon` defaults to 0, which is what every published figure measured:
    on the 20 held-out synthetic rooms (demo run, `cell`) epsilon 0 gives AP 0.394 / 0.640 /
    0.804, while a working epsilon 0.5 (the standalone `hdbscan` package, same parameters) merges
    neighbouring objects (AP50 0.127) and 0.3 still costs AP50 0.46. An epsilon > 0 is passed to
    scikit-learn as given; under NumPy 2 its epsilon search raises on most trees with several
    clusters (scikit-learn issue #33219), which is reported as an error, not refitted.

    Epsilon 0 leaves one case to us: when HDBSCAN keeps the whole set as a single cluster
    (`allow_single_cluster`), scikit-learn labels only the points as dense as its densest one
    (exactly `min_cluster_size` of a 400-point blob). `hdbscan_clusters` then gives the cluster
    every point within `single_cluster_radius` of its labelled core's mean (see
    `complete_single_cluster`); 0.5 is half the loss's push hinge (instance means are trained
    >= 1.0 apart, points <= 0.1 from their mean), so no point nearer another trained instance's
    mean joins. 0 keeps scikit-learn's labelling.
    """

    min_cluster_size: int = 200
    min_samples: int | None = None
    cluster_selection_epsilon: float = 0.0
    cluster_selection_method: str = "eom"
    allow_single_cluster: bool = True
    leaf_size: int = 40
    single_cluster_radius: float = 0.5

    def __post_init__(self) -> None:
        if self.min_cluster_size < 2:
            raise InstanceInputError(f"min_cluster_size must be >= 2, got {self.min_cluster_size}")
        if self.min_samples is not None and self.min_samples < 1:
            raise InstanceInputError(f"min_samples must be >= 1, got {self.min_samples}")
        if not self.cluster_selection_epsilon >= 0.0:
            raise InstanceInputError(
                f"cluster_selection_epsilon must be >= 0, got {self.cluster_selection_epsilon}"
            )
        if not self.single_cluster_radius >= 0.0:
            raise InstanceInputError(
                f"single_cluster_radius must be >= 0, got {self.single_cluster_radius}"
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

    Fewer points than `min_cluster_size` (including none) gives all noise. A lone cluster is
    completed by `complete_single_cluster` (epsilon 0 and `allow_single_cluster` only).
    """
    params = params or ClusterParams()
    emb = check_embeddings(embeddings)
    n = emb.shape[0]
    min_samples = params.min_samples or params.min_cluster_size
    if n < max(params.min_cluster_size, min_samples, 2):
        return np.full(n, -1, dtype=np.int64), np.zeros(n)
    ids, prob = _fit(emb, params)
    if params.allow_single_cluster and params.cluster_selection_epsilon == 0.0:
        ids, prob = complete_single_cluster(emb, ids, prob, params.single_cluster_radius)
    return ids, prob


def complete_single_cluster(
    emb: np.ndarray, ids: np.ndarray, prob: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Give a lone HDBSCAN cluster its points within `radius` of its labelled core's mean.

    Only when `ids` hold exactly one cluster: with EOM or leaf selection that is the root (any
    split of the tree yields at least two selected clusters), which scikit-learn labels down to
    its densest points. The labelled points (the core) keep their labels and probabilities;
    each added point at distance d from the core's mean gets membership min(1, r_core / d), r_core
    the core's largest distance (HDBSCAN's own membership is a density ratio, density ~ 1/d).
    More than one cluster, or none, is returned unchanged.
    """
    labelled = ids >= 0
    if radius == 0.0 or not labelled.any() or np.unique(ids[labelled]).size != 1:
        return ids, prob
    centre = emb[labelled].mean(axis=0)
    dist = np.linalg.norm(emb - centre, axis=1)
    added = ~labelled & (dist <= radius)
    ids, prob = ids.copy(), prob.copy()
    ids[added] = ids[labelled][0]
    core_reach = dist[labelled].max()
    prob[added] = np.minimum(1.0, core_reach / np.maximum(dist[added], 1e-12))
    return ids, prob


def _fit(emb: np.ndarray, params: ClusterParams) -> tuple[np.ndarray, np.ndarray]:
    epsilon = params.cluster_selection_epsilon
    model = HDBSCAN(
        min_cluster_size=params.min_cluster_size,
        min_samples=params.min_samples,
        cluster_selection_epsilon=epsilon,
        cluster_selection_method=params.cluster_selection_method,
        allow_single_cluster=params.allow_single_cluster,
        leaf_size=params.leaf_size,
        copy=True,
    )
    try:
        model.fit(emb)
    except TypeError as error:
        if epsilon == 0.0:
            raise
        # No refit with another epsilon: that would report figures of settings not asked for.
        raise InstanceInputError(
            f"cluster_selection_epsilon {epsilon:g}: scikit-learn's HDBSCAN epsilon search "
            f"failed ({error}; scikit-learn issue #33219, NumPy 2); use epsilon 0, the default"
        ) from None
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
