"""ScanNet instance AP: hand-made cases with known AP, and a slow straightforward reference."""

from __future__ import annotations

import numpy as np
import pytest

from ssen_instance.errors import InstanceInputError
from ssen_instance.evaluate import (
    INSTANCE_NYU40_IDS,
    OVERLAPS,
    average_precision,
    encode_gt_ids,
    evaluate_instances,
)
from ssen_instance.instances import Instances

CHAIR, TABLE = 5, 7  # NYU40 ids


def _scene(sizes: list[tuple[int, int]], void: int = 0) -> np.ndarray:
    """Ground truth ids: consecutive blocks of (nyu40 label, size) as instances 1.., then void."""
    sem, inst = [], []
    for k, (label, size) in enumerate(sizes, start=1):
        sem += [label] * size
        inst += [k] * size
    sem += [1] * void  # wall: void for the instance benchmark
    inst += [0] * void
    return encode_gt_ids(np.array(sem), np.array(inst))


def _pred(n: int, masks: list[tuple[range | np.ndarray, int, float]]) -> Instances:
    return Instances(
        [np.asarray(m) for m, _, _ in masks],
        [lab for _, lab, _ in masks],
        [s for _, _, s in masks],
        n,
    )


def test_perfect_prediction_is_one() -> None:
    gt = _scene([(CHAIR, 200), (CHAIR, 150), (TABLE, 300)], void=100)
    pred = _pred(
        750,
        [(range(0, 200), CHAIR, 0.9), (range(200, 350), CHAIR, 0.8), (range(350, 650), TABLE, 0.7)],
    )
    m = evaluate_instances([(gt, pred)])
    assert m.mean_ap == pytest.approx(1.0) and m.ap50 == 1.0 and m.ap25 == 1.0
    classes = m.per_class()
    assert classes["chair"]["ap"] == 1.0 and np.isnan(classes["bed"]["ap"])


def test_half_recall_known_ap() -> None:
    # Two chairs, only one found: points (r=.5,p=1) and artificial (0,1):
    # steps: 0.5*(r0 - r1) = 0.25 with r_-1 = r0 padding -> 0.5*(0.5-0)=0.25, 0.5*(0.5-0)=0.25 -> 0.5
    gt = _scene([(CHAIR, 200), (CHAIR, 200)])
    pred = _pred(400, [(range(0, 200), CHAIR, 0.9)])
    assert evaluate_instances([(gt, pred)]).ap50 == pytest.approx(0.5)


def test_false_positive_ranking() -> None:
    # One chair found (score .5) and a chair false positive on the table with a HIGHER score.
    gt = _scene([(CHAIR, 200), (TABLE, 200)])
    tp = (range(0, 200), CHAIR, 0.5)
    fp = (range(200, 400), CHAIR, 0.9)  # covers the table instance: not ignored -> FP for chair
    ap = evaluate_instances([(gt, _pred(400, [tp, fp]))]).per_class()["chair"]["ap50"]
    # thresholds 0.5: tp=1 fp=1 p=.5 r=1; 0.9: tp=0 fp=1 p=0 r=0; artificial p=1 r=0.
    # steps: [0.5*(1-0), 0.5*(1-0), 0.5*(0-0)] -> 0.5*0.5 + 0*0.5 + 0 = 0.25
    assert ap == pytest.approx(0.25)
    # Lower score for the false positive: (r=1,p=.5) at .1, (r=1,p=1) at .5, (0,1): recall steps
    # 0, .5, .5 -> 0.5*0 + 1*.5 + 1*.5 = 1.0: a false positive ranked below full recall is free.
    fp_low = (range(200, 400), CHAIR, 0.1)
    ap_low = evaluate_instances([(gt, _pred(400, [tp, fp_low]))]).per_class()["chair"]["ap50"]
    assert ap_low == pytest.approx(1.0)


def test_void_false_positive_is_discounted() -> None:
    gt = _scene([(CHAIR, 200)], void=300)
    on_void = (range(200, 500), CHAIR, 0.99)  # entirely on wall: not a false positive
    pred = _pred(500, [(range(0, 200), CHAIR, 0.5), on_void])
    assert evaluate_instances([(gt, pred)]).ap50 == pytest.approx(1.0)


def test_small_masks_and_small_gt() -> None:
    gt = _scene([(CHAIR, 200), (CHAIR, 50)])
    small_pred = (range(0, 99), CHAIR, 0.9)  # < 100 vertices: dropped
    m = evaluate_instances([(gt, _pred(250, [small_pred]))])
    assert m.per_class()["chair"]["ap50"] == 0.0  # ground truth but no usable prediction
    # A prediction exactly on the 50-vertex instance (padded with void-free chair points? no):
    # predicting the small instance plus 60 of the big one: IoU with big < .25, ignore frac 50/110.
    pred = _pred(250, [(range(0, 200), CHAIR, 0.9), (np.r_[140:200, 200:250], CHAIR, 0.8)])
    # second mask: IoU with big = 60/(200+110-60)=0.24 and it may be the big's duplicate only if
    # IoU > th. ignore frac 50/110=0.4545 > 0.25 but <= 0.5 -> FP at 0.25..0.45, ignored from 0.5.
    m = evaluate_instances([(gt, pred)])
    assert m.per_class()["chair"]["ap50"] == pytest.approx(1.0)
    assert m.per_class()["chair"]["ap25"] == pytest.approx(1.0)  # FP scores below the TP


def test_no_instances_only_background_and_empty() -> None:
    gt = _scene([], void=500)
    m = evaluate_instances([(gt, Instances.empty(500))])
    assert np.isnan(m.mean_ap) and m.to_dict()["ap"] is None
    # predictions but no ground truth anywhere: NaN too (class left out of the mean)
    m2 = evaluate_instances([(gt, _pred(500, [(range(0, 200), CHAIR, 0.5)]))])
    assert np.isnan(m2.ap50)
    # ground truth and no predictions: 0
    gt2 = _scene([(TABLE, 300)])
    assert evaluate_instances([(gt2, Instances.empty(300))]).ap50 == 0.0


def test_labels_outside_instance_classes_are_skipped_and_counted() -> None:
    gt = _scene([(CHAIR, 200)], void=200)
    pred = _pred(
        400, [(range(0, 200), CHAIR, 0.5), (range(200, 400), 1, 0.9), (range(0, 200), 40, 0.9)]
    )
    m = evaluate_instances([(gt, pred)])
    assert m.skipped_predictions == 2 and m.ap50 == 1.0


def test_bad_input() -> None:
    gt = _scene([(CHAIR, 200)])
    with pytest.raises(InstanceInputError, match="200"):
        evaluate_instances([(gt, Instances.empty(150))])
    with pytest.raises(InstanceInputError, match="< 1000"):
        encode_gt_ids(np.array([5]), np.array([1000]))


# ---------------------------------------------------------------------------------------------
# Slow reference: the official algorithm written out with dicts and full boolean masks.


def _reference(scenes: list[tuple[np.ndarray, Instances]], min_size: int = 100) -> np.ndarray:
    classes = list(INSTANCE_NYU40_IDS)
    per_scene = []
    for gt_ids, pred in scenes:
        gts = {c: [] for c in classes}
        for gid in np.unique(gt_ids):
            if gid != 0 and gid // 1000 in classes:
                gts[gid // 1000].append(
                    {"id": gid, "count": int((gt_ids == gid).sum()), "preds": []}
                )
        void = ~np.isin(gt_ids // 1000, classes)
        preds = {c: [] for c in classes}
        for k in range(len(pred)):
            label = int(pred.labels[k])
            if label not in classes:
                continue
            mask = np.zeros(gt_ids.size, bool)
            mask[pred.masks[k]] = True
            if mask.sum() < min_size:
                continue
            p = {
                "key": (len(per_scene), k),
                "count": int(mask.sum()),
                "conf": float(pred.scores[k]),
                "void": int((mask & void).sum()),
                "gts": [],
            }
            for g in gts[label]:
                inter = int((mask & (gt_ids == g["id"])).sum())
                if inter:
                    p["gts"].append((g, inter))
                    g["preds"].append((p, inter))
            preds[label].append(p)
        per_scene.append((gts, preds))

    ap = np.zeros((len(classes), OVERLAPS.size))
    for oi, th in enumerate(OVERLAPS):
        used: set = set()
        for ci, c in enumerate(classes):
            ys, ss, hard, has_gt, has_pred = [], [], 0, False, False
            for gts, preds in per_scene:
                big = [g for g in gts[c] if g["count"] >= min_size]
                has_gt |= bool(big)
                has_pred |= bool(preds[c])
                for g in big:
                    score, matched = None, False
                    for p, inter in g["preds"]:
                        if p["key"] in used:
                            continue
                        if inter / (g["count"] + p["count"] - inter) > th:
                            if matched:
                                ys.append(0)
                                ss.append(min(score, p["conf"]))
                                score = max(score, p["conf"])
                            else:
                                matched, score = True, p["conf"]
                                used.add(p["key"])
                    if matched:
                        ys.append(1)
                        ss.append(score)
                    else:
                        hard += 1
                for p in preds[c]:
                    if any(i / (g["count"] + p["count"] - i) > th for g, i in p["gts"]):
                        continue
                    ignore = p["void"] + sum(i for g, i in p["gts"] if g["count"] < min_size)
                    if ignore / p["count"] <= th:
                        ys.append(0)
                        ss.append(p["conf"])
            if not has_gt:
                ap[ci, oi] = np.nan
            elif not has_pred or not ys:
                ap[ci, oi] = 0.0
            else:
                ap[ci, oi] = _reference_pr_area(np.array(ys, float), np.array(ss), hard)
    return ap


def _reference_pr_area(y: np.ndarray, s: np.ndarray, hard: int) -> float:
    thresholds = sorted(set(s.tolist()))
    prec, rec = [], []
    for t in thresholds:
        tp = float(((s >= t) & (y == 1)).sum())
        fp = float(((s >= t) & (y == 0)).sum())
        fn = float(((s < t) & (y == 1)).sum()) + hard
        prec.append(tp / (tp + fp))
        rec.append(tp / (tp + fn) if tp + fn else 0.0)
    prec.append(1.0)
    rec.append(0.0)
    area = 0.0
    for i in range(len(prec)):
        left = rec[i - 1] if i > 0 else rec[0]
        right = rec[i + 1] if i + 1 < len(rec) else 0.0
        area += prec[i] * (left - right) / 2
    return area


def _conf(rng: np.random.Generator) -> float:
    return float(rng.choice([0.2, 0.5, 0.5, 0.9]) if rng.random() < 0.5 else rng.random())


def _random_scenes(rng: np.random.Generator, num_scenes: int) -> list[tuple[np.ndarray, Instances]]:
    scenes = []
    labels = [CHAIR, TABLE, 3, 39]
    for _ in range(num_scenes):
        sizes = [
            (int(rng.choice(labels)), int(rng.integers(40, 400))) for _ in range(rng.integers(0, 6))
        ]
        gt = _scene(sizes, void=int(rng.integers(0, 300)))
        n = gt.size
        masks = []
        start = 0
        for label, size in sizes:  # perturbed copies of ground truth (some duplicated)
            for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
                idx = np.arange(start, start + size)
                idx = idx[rng.random(size) < rng.uniform(0.5, 1.0)]
                extra = np.arange(start + size, min(n, start + size + int(rng.integers(0, 120))))
                lab = label if rng.random() < 0.85 else int(rng.choice(labels))
                masks.append((np.r_[idx, extra], lab, _conf(rng)))
            start += size
        for _ in range(rng.integers(0, 4)):  # random masks, may overlap anything
            begin = int(rng.integers(0, n))
            idx = np.arange(begin, min(n, begin + int(rng.integers(50, 450))))
            masks.append(
                (idx[rng.random(idx.size) < 0.9], int(rng.choice([*labels, 1])), _conf(rng))
            )
        order = rng.permutation(len(masks))
        masks = [masks[i] for i in order]
        scenes.append((gt, _pred(n, masks)))
    return scenes


@pytest.mark.parametrize("seed", range(12))
def test_matches_slow_reference(seed: int) -> None:
    scenes = _random_scenes(np.random.default_rng(seed), num_scenes=3)
    got = evaluate_instances(scenes).ap
    want = _reference(scenes)
    np.testing.assert_allclose(got, want, atol=1e-12, equal_nan=True)


def test_average_precision_matches_reference_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        y = (rng.random(n) < 0.5).astype(float)
        s = rng.choice([0.1, 0.3, 0.5, 0.7], n)
        hard = int(rng.integers(0, 4))
        if y.sum() + hard == 0:
            continue
        assert average_precision(y, s, hard) == pytest.approx(_reference_pr_area(y, s, hard))


def test_overlaps_are_the_official_ones() -> None:
    np.testing.assert_allclose(OVERLAPS, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.25])
