"""Why do the embeddings separate instances (badly)? Numbers per class, as JSON.

    python diagnose_embeddings.py SCENES --instance-weights RUN/instance.pt \
        [--semantic-weights S] [--json OUT.json] [--sweep] [--point] [--threads 1]

On SSEN scene files (e.g. the 20 held-out synthetic rooms), with the instance network of a run:

- `spread`: per instance, the distance of its voxels' embeddings to the instance mean (mean and
  90th percentile), and the distance from its mean to the mean of the spatially nearest instance
  and of the nearest one in embedding space; per class means. Ground-truth foreground
  (ground-truth semantics), voxels labelled by their representative point.
- `loss`: the loss terms of the run's loss config on these voxels, and how far from its margins
  the net is (share of voxels beyond the pull margin, share of instance pairs inside the push
  margin).
- `hdbscan`: over-splitting and merging of the default clustering on ground-truth semantics
  (ground-truth instances covered by >= 2 clusters of >= 10 % of their points; clusters holding
  >= 2 instances), and with `--sweep` the AP over a grid of min_cluster_size x epsilon.
- `ap`: ScanNet AP with predicted semantics (needs --semantic-weights; as `ssen-instance eval`),
  with ground-truth semantics, and with ground-truth semantics and "oracle" embeddings (every
  instance voxel replaced by its instance's mean embedding: what clustering gives if the pull
  term were satisfied exactly; the means are still the net's). `--point` adds the original
  per-point HDBSCAN on predicted semantics (slow).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ssen_instance.cluster import ClusterParams
from ssen_instance.evaluate import encode_gt_ids, evaluate_instances
from ssen_instance.export import to_nyu40
from ssen_instance.grouping import GroupingConfig, group_instances
from ssen_instance.inference import embedding_pass, semantic_pass
from ssen_instance.loss import DiscriminativeLossConfig, discriminative_loss
from ssen_instance.model import load_instance_model
from ssen_instance.scenes import list_scene_files, read_ssen_scene
from stseg_data.labels import SCANNET_CLASS_NAMES, scannet20_to_nyu40
from stseg_data.voxelize import voxelize
from stseg_models.checkpoint import read_checkpoint
from stseg_models.checkpoint_io import read_checkpoint_file


def _loss_config(path: str) -> DiscriminativeLossConfig:
    payload = read_checkpoint_file(path)
    extra = (payload.get("extra") or {}) if isinstance(payload, dict) else {}
    saved = (extra.get("ssen") or {}).get("loss") or {}
    fields = DiscriminativeLossConfig.__dataclass_fields__
    return DiscriminativeLossConfig(**{k: v for k, v in saved.items() if k in fields})


def _instance_stats(emb, inst, sem, xyz):
    """Per instance (id > 0): class, voxels, mean, spread mean / p90, spatial centroid."""
    out = []
    for k in np.unique(inst[inst > 0]):
        sel = inst == k
        e = emb[sel]
        mu = e.mean(axis=0)
        d = np.linalg.norm(e - mu, axis=1)
        cls = int(np.bincount(sem[sel][sem[sel] < 20], minlength=20).argmax())
        out.append(
            {
                "id": int(k),
                "class": cls,
                "voxels": int(sel.sum()),
                "mean": mu,
                "centroid": xyz[sel].mean(axis=0),
                "extent": float(np.linalg.norm(xyz[sel].max(0) - xyz[sel].min(0))),
                "spread_mean": float(d.mean()),
                "spread_p90": float(np.percentile(d, 90)),
                "spread_max": float(d.max()),
            }
        )
    for a in out:
        others = [b for b in out if b is not a]
        if not others:
            a["nn_spatial"] = a["nn_embedding"] = math.nan
            continue
        spatial = min(others, key=lambda b: np.linalg.norm(a["centroid"] - b["centroid"]))
        a["nn_spatial"] = float(np.linalg.norm(a["mean"] - spatial["mean"]))
        a["nn_embedding"] = float(min(np.linalg.norm(a["mean"] - b["mean"]) for b in others))
    return out


def _split_merge(gt_inst: np.ndarray, pred_ids: np.ndarray) -> dict[str, float]:
    """Over-splitting / merging at point level (pred_ids -1 = unclustered)."""
    split = merged = covered = 0
    largest = []
    gts = np.unique(gt_inst[gt_inst > 0])
    for k in gts:
        p = pred_ids[gt_inst == k]
        n = p.size
        c = np.bincount(p[p >= 0]) if (p >= 0).any() else np.zeros(1, np.int64)
        big = int((c >= 0.1 * n).sum())
        split += big >= 2
        covered += big >= 1
        largest.append(c.max() / n)
    preds = np.unique(pred_ids[pred_ids >= 0])
    for j in preds:
        g = gt_inst[pred_ids == j]
        c = np.bincount(g[g > 0]) if (g > 0).any() else np.zeros(1, np.int64)
        merged += int((c >= 0.1 * g.size).sum()) >= 2
    return {
        "gt_instances": int(gts.size),
        "clusters": int(preds.size),
        "gt_split_2plus": int(split),
        "gt_uncovered": int(gts.size - covered),
        "largest_cluster_share_mean": float(np.mean(largest)) if largest else math.nan,
        "clusters_merging_2plus": int(merged),
    }


def _summary(metrics) -> dict[str, float]:
    return {"ap": metrics.mean_ap, "ap50": metrics.ap50, "ap25": metrics.ap25}


def _portable(path: str | None) -> str | None:
    """A path as the results file records it: relative to the working folder, else its last parts.

    Results files are committed; an absolute path (/tmp/..., a home folder) names one machine.
    """
    if path is None:
        return None
    candidate = Path(path)
    if not candidate.is_absolute():
        return candidate.as_posix()
    try:
        return candidate.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(*candidate.parts[-3:]).as_posix()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenes")
    ap.add_argument("--instance-weights", required=True)
    ap.add_argument("--semantic-weights", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--sweep-gt", action="store_true", help="the sweep also on ground truth")
    ap.add_argument("--point", action="store_true")
    ap.add_argument("--min-cluster-size", type=int, default=200)
    ap.add_argument("--cluster-epsilon", type=float, default=0.0)  # ClusterParams' (issue #26)
    ap.add_argument("--cell", type=int, default=3)
    ap.add_argument("--score", default="vote", choices=("vote", "vote_membership", "vote_size"))
    ap.add_argument("--class-hypotheses", type=int, default=1)
    ap.add_argument("--class-min-share", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, spec = load_instance_model(args.instance_weights)
    loss_cfg = _loss_config(args.instance_weights)
    sem_model = sem_spec = None
    if args.semantic_weights:
        ckpt = read_checkpoint(args.semantic_weights)
        sem_model, _ = ckpt.build(strict=True)
        sem_model.eval()
        sem_spec = ckpt.inference
    base = GroupingConfig(
        params=ClusterParams(
            min_cluster_size=args.min_cluster_size, cluster_selection_epsilon=args.cluster_epsilon
        ),
        cell=args.cell,
        score=args.score,
        class_hypotheses=args.class_hypotheses,
        class_min_share=args.class_min_share,
    )
    # one parameter at a time around the default (a full grid is 4x slower on a busy core)
    grid = [(m, args.cluster_epsilon) for m in (50, 100, 400, 800)]
    grid += [(args.min_cluster_size, e) for e in (0.25, 0.75, 1.0)]
    if not args.sweep:
        grid = []

    instances = []
    pairs: dict[str, list] = {
        "predicted": [], "predicted_oracle": [], "gt": [], "gt_oracle": [], "point_predicted": []
    }  # fmt: skip
    cells = (2, 4, 5) if args.sweep else ()
    cell_pairs: dict[str, list] = {f"cell{c}": [] for c in cells}
    sweep_pairs: dict[str, list] = {f"{m}/{e}": [] for m, e in grid}
    sweep_pred: dict[str, list] = {f"{m}/{e}": [] for m, e in grid}
    split_merge = []
    loss_terms = []
    beyond_pull = []
    pairs_inside = [0, 0]
    tic = time.perf_counter()
    for path in list_scene_files(args.scenes):
        scene = read_ssen_scene(path)
        gt_ids = encode_gt_ids(scannet20_to_nyu40(scene.semantic), scene.instance)
        vox = voxelize(scene.xyz, spec.voxel_size)
        v_inst = scene.instance[vox.index]
        v_xyz = scene.xyz[vox.index]
        emb, v_sem, inv, coords = embedding_pass(
            model, spec, scene.xyz, scene.rgb, scene.semantic, vox=vox, background_head=False
        )
        fg = np.isin(v_sem, range(2, 20)) & (v_inst > 0)
        stats = _instance_stats(emb[fg], v_inst[fg], v_sem[fg], v_xyz[fg])
        for s in stats:
            s["scene"] = scene.name
        instances += stats
        et = torch.from_numpy(emb[fg]).double()
        it = torch.from_numpy(v_inst[fg])
        terms = discriminative_loss(et, it, None, loss_cfg)
        loss_terms.append({k: float(v) for k, v in terms.items()})
        d = np.concatenate(
            [np.linalg.norm(emb[fg][v_inst[fg] == s["id"]] - s["mean"], axis=1) for s in stats]
        )
        beyond_pull.append((float((d > loss_cfg.delta_pull).mean()), d.size))
        means = np.stack([s["mean"] for s in stats])
        dm = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(len(stats), 1)]
        pairs_inside[0] += int((dm < 2 * loss_cfg.delta_push).sum())
        pairs_inside[1] += int(dm.size)

        res = group_instances(emb, v_sem, inv, base, coords)
        pairs["gt"].append((gt_ids, to_nyu40(res)))
        split_merge.append(_split_merge(scene.instance, res.to_ids()))
        oracle = emb.copy()
        for s in stats:
            oracle[fg & (v_inst == s["id"])] = s["mean"]
        pairs["gt_oracle"].append(
            (gt_ids, to_nyu40(group_instances(oracle, v_sem, inv, base, coords)))
        )
        for m, e in grid:
            cfg = replace(
                base,
                params=replace(base.params, min_cluster_size=m, cluster_selection_epsilon=e),
            )
            if args.sweep_gt:
                sweep_pairs[f"{m}/{e}"].append(
                    (gt_ids, to_nyu40(group_instances(emb, v_sem, inv, cfg, coords)))
                )
        if sem_model is not None:
            shared = math.isclose(sem_spec.voxel_size, spec.voxel_size)
            pred_sem = semantic_pass(
                sem_model, sem_spec, scene.xyz, scene.rgb, vox=vox if shared else None
            )
            pemb, pv_sem, pinv, pcoords = embedding_pass(
                model, spec, scene.xyz, scene.rgb, pred_sem, vox=vox
            )
            pairs["predicted"].append(
                (gt_ids, to_nyu40(group_instances(pemb, pv_sem, pinv, base, pcoords)))
            )
            # oracle on the predicted foreground: ground-truth instance voxels take their mean
            p_fg = np.isin(pv_sem, range(2, 20)) & (v_inst > 0)
            poracle = pemb.copy()
            for k in np.unique(v_inst[p_fg]):
                sel = p_fg & (v_inst == k)
                poracle[sel] = pemb[sel].mean(axis=0)
            pairs["predicted_oracle"].append(
                (gt_ids, to_nyu40(group_instances(poracle, pv_sem, pinv, base, pcoords)))
            )
            for c in cells:
                cell_pairs[f"cell{c}"].append(
                    (
                        gt_ids,
                        to_nyu40(
                            group_instances(pemb, pv_sem, pinv, replace(base, cell=c), pcoords)
                        ),
                    )
                )
            for m, e in grid:
                cfg = replace(
                    base,
                    params=replace(base.params, min_cluster_size=m, cluster_selection_epsilon=e),
                )
                sweep_pred[f"{m}/{e}"].append(
                    (gt_ids, to_nyu40(group_instances(pemb, pv_sem, pinv, cfg, pcoords)))
                )
            if args.point:
                cfg = replace(base, strategy="point")
                pairs["point_predicted"].append(
                    (gt_ids, to_nyu40(group_instances(pemb, pv_sem, pinv, cfg, pcoords)))
                )

    per_class = {}
    for c in sorted({s["class"] for s in instances}):
        rows = [s for s in instances if s["class"] == c]

        def avg(key, rows=rows):
            vals = [s[key] for s in rows if not math.isnan(s[key])]
            return float(np.mean(vals)) if vals else math.nan

        per_class[SCANNET_CLASS_NAMES[c]] = {
            "instances": len(rows),
            "voxels_mean": avg("voxels"),
            "extent_m": avg("extent"),
            "spread_mean": avg("spread_mean"),
            "spread_p90": avg("spread_p90"),
            "nn_mean_distance_spatial": avg("nn_spatial"),
            "nn_mean_distance_embedding": avg("nn_embedding"),
            "share_p90_over_half_nn": float(
                np.mean([2 * s["spread_p90"] > s["nn_embedding"] for s in rows])
            ),
        }
    every = {
        "instances": len(instances),
        "spread_mean": float(np.mean([s["spread_mean"] for s in instances])),
        "spread_p90": float(np.mean([s["spread_p90"] for s in instances])),
        "nn_mean_distance_spatial": float(np.nanmean([s["nn_spatial"] for s in instances])),
        "nn_mean_distance_embedding": float(np.nanmean([s["nn_embedding"] for s in instances])),
    }
    total_voxels = sum(n for _, n in beyond_pull)
    report = {
        "scenes": _portable(args.scenes),
        "instance_weights": _portable(args.instance_weights),
        "semantic_weights": _portable(args.semantic_weights),
        "loss_config": loss_cfg.__dict__,
        "clustering": {
            "strategy": base.strategy,
            "min_cluster_size": args.min_cluster_size,
            "epsilon": args.cluster_epsilon,
            "cell": args.cell,
            "score": args.score,
            "class_hypotheses": args.class_hypotheses,
            "class_min_share": args.class_min_share,
        },
        "spread": {"all": every, "per_class": per_class},
        "loss": {
            "terms_mean": {k: float(np.mean([t[k] for t in loss_terms])) for k in loss_terms[0]},
            "share_voxels_beyond_pull_margin": sum(f * n for f, n in beyond_pull) / total_voxels,
            "share_pairs_inside_push_margin": pairs_inside[0] / max(pairs_inside[1], 1),
        },
        "hdbscan": {
            "gt_semantics": {
                k: int(sum(r[k] for r in split_merge))
                for k in (
                    "gt_instances",
                    "clusters",
                    "gt_split_2plus",
                    "gt_uncovered",
                    "clusters_merging_2plus",
                )
            },
            "sweep_gt_semantics": {
                k: _summary(evaluate_instances(v)) for k, v in sweep_pairs.items() if v
            },
            "sweep_predicted": {
                k: _summary(evaluate_instances(v)) for k, v in sweep_pred.items() if v
            },
            "cell_size_predicted": {
                k: _summary(evaluate_instances(v)) for k, v in cell_pairs.items() if v
            },
        },
        "ap": {k: _summary(evaluate_instances(v)) for k, v in pairs.items() if v},
        "ap_per_class_gt": evaluate_instances(pairs["gt"]).per_class(),
        "seconds": time.perf_counter() - tic,
    }
    if pairs["predicted"]:
        report["ap_per_class_predicted"] = evaluate_instances(pairs["predicted"]).per_class()
    # sorted keys, fixed indent: the layout never changes between runs (the README test reads it)
    text = json.dumps(report, indent=2, default=float, sort_keys=True) + "\n"
    if args.json:
        Path(args.json).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
