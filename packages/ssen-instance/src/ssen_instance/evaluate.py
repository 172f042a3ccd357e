"""ScanNet 3D instance evaluation (AP, AP50, AP25), computed as the official benchmark script.

Re-implementation of the rules of ScanNet's `evaluate_semantic_instance.py` (vectorised over
predictions and IoU thresholds; the greedy per-ground-truth matching keeps its order):

- Ground truth per vertex is `label_id * 1000 + instance_id` with NYU40 label ids (0 = none); the
  instances are the ids whose label is one of the 18 instance classes. Instances under
  `min_region_size` (100) vertices are not matched against, but predictions on them are not
  false positives either.
- Predictions: masks with a NYU40 label id and a confidence. Masks under 100 vertices are dropped;
  a prediction whose label is not one of the 18 classes (0, wall, floor, 41, -1, ...) is ignored
  entirely, as the script does: not a false positive, not a match, no effect on any class; it is
  only counted in `skipped_predictions`. (The script does not even open its mask file:
  `export.read_scannet_instances(..., only_labels=INSTANCE_NYU40_IDS)` reads files that way.)
- Files: a `<scene>.txt` that names one mask file on several lines is one prediction in the
  script (it keys the lines by mask path; the last line's label and confidence win):
  `export.read_scannet_instances` reads it so.
- Overlaps: the script's `np.append(np.arange(0.5, 0.95, 0.05), 0.25)`, i.e. IoU 0.50, 0.55, ...,
  0.90 (numpy's arange stops before 0.95) and 0.25. AP averages the first nine.
- Per class and threshold, ground truth instances are visited in id order; each takes the first
  still-unmatched prediction (in file order) with IoU > threshold as a true positive carrying the
  highest confidence among its candidates, and the other candidates become false positives. An
  unmatched prediction is a false positive unless the fraction of it lying on void / unannotated
  vertices or on too-small instances of its class exceeds the threshold.
- The precision-recall area is the script's: a point per distinct score, an artificial (recall 0,
  precision 1) end point, and step widths (r[i-1] - r[i+1]) / 2.
- A class with ground truth but no prediction has AP 0; a class without ground truth has NaN and
  is left out of the means (predictions of it then cost nothing).
- One deviation, where the script has no result: a class with ground truth and predictions in
  the evaluated scenes (not necessarily the same scenes) whose ground truth is all missed at some
  threshold while every one of its predictions is ignored there (lying mostly on void /
  unannotated vertices or on too-small instances) leaves the script an empty score list, and it
  stops with an IndexError. Here that class's AP at that threshold is 0 (its recall is 0).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ssen_instance.errors import InstanceInputError
from ssen_instance.instances import Instances

OVERLAPS: np.ndarray = np.append(np.arange(0.5, 0.95, 0.05), 0.25)
MIN_REGION_SIZE = 100
INSTANCE_CLASS_NAMES: tuple[str, ...] = (
    "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub",
    "otherfurniture",
)  # fmt: skip
INSTANCE_NYU40_IDS: tuple[int, ...] = (
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    14,
    16,
    24,
    28,
    33,
    34,
    36,
    39,
)


def encode_gt_ids(semantic_nyu40: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """ScanNet ground-truth ids [N]: `label * 1000 + instance` where instance > 0, else 0."""
    sem = np.asarray(semantic_nyu40, dtype=np.int64)
    inst = np.asarray(instances, dtype=np.int64)
    if sem.shape != inst.shape or sem.ndim != 1:
        raise InstanceInputError(f"semantic {sem.shape} and instances {inst.shape} must be [N]")
    if inst.size and inst.max() >= 1000:
        raise InstanceInputError(f"instance ids must be < 1000, got {int(inst.max())}")
    return np.where((inst > 0) & (sem > 0), sem * 1000 + inst, 0)


@dataclass
class _ClassAccumulator:
    """Per (class, threshold) lists of (is-true-positive, score), hard false negatives, flags."""

    num_overlaps: int
    trues: list[list[np.ndarray]] = field(default_factory=list)
    scores: list[list[np.ndarray]] = field(default_factory=list)
    hard_fn: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    has_gt: bool = False
    has_pred: bool = False

    def __post_init__(self) -> None:
        self.trues = [[] for _ in range(self.num_overlaps)]
        self.scores = [[] for _ in range(self.num_overlaps)]
        self.hard_fn = np.zeros(self.num_overlaps, np.int64)

    def add(self, t: int | np.integer, true: np.ndarray, score: np.ndarray) -> None:
        self.trues[t].append(np.asarray(true, np.float64))
        self.scores[t].append(np.asarray(score, np.float64))


def _match_class(
    iou: np.ndarray,
    conf: np.ndarray,
    gt_big: np.ndarray,
    ignore_frac: np.ndarray,
    overlaps: np.ndarray,
    acc: _ClassAccumulator,
) -> None:
    """Match one scene's predictions [P] of one class to its ground truth [G] at every threshold."""
    num_t = overlaps.size
    p = conf.size
    visited = np.zeros((num_t, p), dtype=bool)
    for g in np.flatnonzero(gt_big):
        cands = (iou[:, g][None, :] > overlaps[:, None]) & ~visited  # [T, P]
        found = cands.any(axis=1)
        acc.hard_fn += ~found
        for t in np.flatnonzero(found):
            c = np.flatnonzero(cands[t])
            visited[t, c[0]] = True  # only the first candidate is taken, as the script does
            scores = conf[c]
            best = int(scores.argmax())
            acc.add(t, np.array([1.0]), scores[best : best + 1])
            if c.size > 1:
                acc.add(t, np.zeros(c.size - 1), np.delete(scores, best))
    if p:
        # Unmatched-to-anything predictions are false positives unless mostly on ignored vertices.
        found_gt = (iou[:, :, None] > overlaps[None, None, :]).any(axis=1)  # [P, T]
        is_fp = ~found_gt & (ignore_frac[:, None] <= overlaps[None, :])
        for t_index in range(num_t):
            fp = np.flatnonzero(is_fp[:, t_index])
            if fp.size:
                acc.add(t_index, np.zeros(fp.size), conf[fp])


def _scene(
    gt_ids: np.ndarray,
    pred: Instances,
    accs: list[_ClassAccumulator],
    overlaps: np.ndarray,
    min_region_size: int,
) -> int:
    """Add one scene to the per-class accumulators; returns the number of skipped predictions."""
    gt_ids = np.asarray(gt_ids, dtype=np.int64)
    if gt_ids.ndim != 1:
        raise InstanceInputError(f"ground truth ids must be [N], got shape {gt_ids.shape}")
    if pred.num_points != gt_ids.size:
        raise InstanceInputError(
            f"predictions cover {pred.num_points} vertices but the scene has {gt_ids.size}"
        )
    class_ids = np.asarray(INSTANCE_NYU40_IDS)
    uniq, gt_index, gt_count = np.unique(gt_ids, return_inverse=True, return_counts=True)
    gt_label = uniq // 1000
    void = ~np.isin(gt_ids // 1000, class_ids)

    in_class = np.isin(pred.labels, class_ids)
    skipped = int((~in_class).sum())
    masks = [np.unique(m) for m in pred.masks]
    sizes = np.array([m.size for m in masks], dtype=np.int64)
    keep = np.flatnonzero(in_class & (sizes >= min_region_size))
    g = uniq.size
    if keep.size:
        flat = np.concatenate([masks[i] for i in keep])
        owner = np.repeat(np.arange(keep.size), sizes[keep])
        inter = np.bincount(owner * g + gt_index[flat], minlength=keep.size * g).reshape(-1, g)
        void_inter: np.ndarray = np.bincount(owner, weights=void[flat], minlength=keep.size)
    else:
        inter = np.zeros((0, g), np.int64)
        void_inter = np.zeros(0, np.float64)
    p_size, p_label, p_conf = sizes[keep], pred.labels[keep], pred.scores[keep]

    for ci, cid in enumerate(class_ids):
        gsel = np.flatnonzero((gt_label == cid) & (uniq != 0))
        psel = np.flatnonzero(p_label == cid)
        gt_big = gt_count[gsel] >= min_region_size
        acc = accs[ci]
        acc.has_gt |= bool(gt_big.any())
        acc.has_pred |= bool(psel.size)
        if not gt_big.any() and not psel.size:
            continue
        it = inter[np.ix_(psel, gsel)].astype(np.float64)
        union = gt_count[gsel][None, :] + p_size[psel][:, None] - it
        iou = np.where(it > 0, it / np.maximum(union, 1), 0.0)
        ignored = void_inter[psel] + (it * ~gt_big[None, :]).sum(axis=1)
        ignore_frac = ignored / np.maximum(p_size[psel], 1)
        _match_class(iou, p_conf[psel], gt_big, ignore_frac, overlaps, acc)
    return skipped


def average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_fn: int) -> float:
    """Area under the precision-recall curve exactly as the official script computes it."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.size == 0:
        return 0.0
    order = np.argsort(y_score, kind="stable")
    cum = np.cumsum(y_true[order])
    _, first = np.unique(y_score[order], return_index=True)
    below = np.where(first > 0, cum[first - 1], 0.0)  # true positives scoring under the threshold
    tp = cum[-1] - below
    fp = y_true.size - first - tp
    fn = below + hard_fn
    precision = np.append(tp / (tp + fp), 1.0)
    recall = np.append(np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0), 0.0)
    padded = np.concatenate([recall[:1], recall, [0.0]])
    return float(np.dot(precision, 0.5 * (padded[:-2] - padded[2:])))


@dataclass
class InstanceMetrics:
    """AP per class [18] and overlap, plus the benchmark's averages."""

    ap: np.ndarray  # float [C, O], NaN where a class has no ground truth
    overlaps: np.ndarray
    class_names: tuple[str, ...] = INSTANCE_CLASS_NAMES
    num_scenes: int = 0
    skipped_predictions: int = 0

    def _cols(self) -> tuple[np.ndarray, int, int]:
        main = np.flatnonzero(~np.isclose(self.overlaps, 0.25))
        o50 = int(np.flatnonzero(np.isclose(self.overlaps, 0.5))[0])
        o25 = int(np.flatnonzero(np.isclose(self.overlaps, 0.25))[0])
        return main, o50, o25

    def per_class(self) -> dict[str, dict[str, float]]:
        main, o50, o25 = self._cols()
        return {
            name: {
                "ap": float(np.mean(self.ap[i, main])),
                "ap50": float(self.ap[i, o50]),
                "ap25": float(self.ap[i, o25]),
            }
            for i, name in enumerate(self.class_names)
        }

    def _nanmean(self, values: np.ndarray) -> float:
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    @property
    def mean_ap(self) -> float:
        return self._nanmean(self.ap[:, self._cols()[0]])

    @property
    def ap50(self) -> float:
        return self._nanmean(self.ap[:, self._cols()[1]])

    @property
    def ap25(self) -> float:
        return self._nanmean(self.ap[:, self._cols()[2]])

    def to_dict(self) -> dict:
        """JSON-ready summary; NaN (a class without ground truth) becomes None."""

        def clean(x: float) -> float | None:
            return None if np.isnan(x) else round(x, 6)

        return {
            "ap": clean(self.mean_ap),
            "ap50": clean(self.ap50),
            "ap25": clean(self.ap25),
            "classes": {
                k: {m: clean(v) for m, v in d.items()} for k, d in self.per_class().items()
            },
            "num_scenes": self.num_scenes,
            "skipped_predictions": self.skipped_predictions,
            "overlaps": [round(float(o), 2) for o in self.overlaps],
        }

    def table(self) -> str:
        """The per-class table as the official script prints it (nan where no ground truth)."""
        lines = [f"{'class':<16}{'AP':>9}{'AP50':>9}{'AP25':>9}", "-" * 43]
        for name, d in self.per_class().items():
            lines.append(f"{name:<16}{d['ap']:>9.3f}{d['ap50']:>9.3f}{d['ap25']:>9.3f}")
        lines.append("-" * 43)
        lines.append(f"{'average':<16}{self.mean_ap:>9.3f}{self.ap50:>9.3f}{self.ap25:>9.3f}")
        return "\n".join(lines)


def evaluate_instances(
    scenes: Iterable[tuple[np.ndarray, Instances]],
    *,
    overlaps: np.ndarray = OVERLAPS,
    min_region_size: int = MIN_REGION_SIZE,
) -> InstanceMetrics:
    """ScanNet instance AP over scenes of (ground-truth ids [N], predicted `Instances` in NYU40 ids).

    Ground-truth ids are `label * 1000 + instance` (see `encode_gt_ids`).
    """
    overlaps = np.asarray(overlaps, dtype=np.float64)
    if not np.isclose(overlaps, 0.5).any() or not np.isclose(overlaps, 0.25).any():
        raise InstanceInputError("overlaps must include 0.5 and 0.25")
    accs = [_ClassAccumulator(overlaps.size) for _ in INSTANCE_NYU40_IDS]
    num_scenes = skipped = 0
    for gt_ids, pred in scenes:
        skipped += _scene(gt_ids, pred, accs, overlaps, min_region_size)
        num_scenes += 1
    ap = np.full((len(accs), overlaps.size), np.nan)
    for ci, acc in enumerate(accs):
        for t in range(overlaps.size):
            if acc.has_gt and acc.has_pred:
                y_true = np.concatenate(acc.trues[t]) if acc.trues[t] else np.zeros(0)
                y_score = np.concatenate(acc.scores[t]) if acc.scores[t] else np.zeros(0)
                ap[ci, t] = average_precision(y_true, y_score, int(acc.hard_fn[t]))
            elif acc.has_gt:
                ap[ci, t] = 0.0
    return InstanceMetrics(ap, overlaps, INSTANCE_CLASS_NAMES, num_scenes, skipped)
