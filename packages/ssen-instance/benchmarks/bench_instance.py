"""Per-scene SSEN inference time by stage, naive per-point HDBSCAN vs faster clustering.

    python bench_instance.py --json OUT.json [--quick] [--no-model] [--scenes N] [--threads T]

Scenes are procedural rooms (`ssen_instance.toy`). The semantic and embedding passes run the real
networks (random weights: time only, their outputs are not used); clustering then runs on
simulated embeddings and semantics (ground truth with noise, `ssen_instance.toy`) so that every
strategy can be scored with the ScanNet AP against the scene's ground truth. Strategies:
`point` (the original: HDBSCAN on every foreground point), `voxel`, `voxel_class` and `cell`.
Ratios are against `point`, measured in the same process. The two passes share one voxelization,
as `InstanceSegmenter.predict` does. `--threads 1` is the faster setting on a loaded machine
(OpenMP threads of small sparse kernels waiting for each other); scikit-learn's HDBSCAN is
single-threaded either way.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import numpy as np
import torch

from ssen_instance.cluster import ClusterParams
from ssen_instance.evaluate import encode_gt_ids, evaluate_instances
from ssen_instance.export import to_nyu40, write_scannet_instances
from ssen_instance.grouping import STRATEGIES, GroupingConfig, group_instances
from ssen_instance.inference import embedding_pass, semantic_pass
from ssen_instance.model import build_embedding_model, instance_inference_spec
from ssen_instance.toy import noisy_semantic, simulated_embeddings, toy_room
from stseg_data.labels import scannet20_to_nyu40
from stseg_data.voxelize import voxelize
from stseg_models.checkpoint import dataset_preset
from stseg_models.zoo import build_model


def _model_passes(scene, model_name: str) -> dict[str, float]:
    sem_model = build_model(model_name, 3, 20).eval()
    emb_model = build_embedding_model(model_name, 8).eval()
    tic = time.perf_counter()
    # As `InstanceSegmenter.predict`: one voxelization (both networks at 2 cm) for both passes.
    vox = voxelize(scene.xyz, 0.02)
    semantic_pass(sem_model, dataset_preset("scannet"), scene.xyz, scene.rgb, vox=vox)
    semantic = time.perf_counter() - tic
    tic = time.perf_counter()
    # Background removal as at inference, from the true classes (the random net predicts noise).
    embedding_pass(
        emb_model, instance_inference_spec(8), scene.xyz, scene.rgb, scene.semantic, vox=vox
    )
    return {"semantic": semantic, "embedding": time.perf_counter() - tic}


# (spread, confusion) of the simulated embeddings: "tight" is what the loss's margins ask for
# (pull hinge 0.1), "loose" a poorly trained network.
NOISE = {"tight": (0.1, 0.05), "loose": (0.25, 0.1)}


def _simulated(scene, seed: int, noise: str):
    vox = voxelize(scene.xyz, 0.02)
    voxel_inst = scene.instance[vox.index]
    spread, confusion = NOISE[noise]
    emb = simulated_embeddings(voxel_inst, spread=spread, confusion=confusion, seed=seed)
    voxel_sem = noisy_semantic(scene.semantic[vox.index], voxel_inst, flip=0.03, seed=seed)
    return emb, voxel_sem, vox.inverse, vox.coords


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True)
    parser.add_argument("--quick", action="store_true", help="small scenes, small network")
    parser.add_argument("--no-model", action="store_true", help="skip the network passes")
    parser.add_argument("--scenes", type=int, default=None)
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads of the network passes (default 2)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        room = {"num_objects": 6, "density": 900.0, "size": 3.5}
        model_name, scenes = "Res16UNet14A", args.scenes or 1
    else:
        room = {"num_objects": 12, "density": 1500.0, "size": 5.0}
        model_name, scenes = "Mink16UNet34C", args.scenes or 2
    params = ClusterParams()

    rooms = [toy_room(seed=s, **room) for s in range(scenes)]
    passes = {"semantic": float("nan"), "embedding": float("nan")}
    if not args.no_model:
        passes = _model_passes(rooms[0], model_name)

    clustering = {s: [] for s in STRATEGIES}
    export = {s: [] for s in STRATEGIES}
    pairs: dict[tuple[str, str], list] = {(s, n): [] for s in STRATEGIES for n in NOISE}
    with tempfile.TemporaryDirectory() as tmp:
        for i, scene in enumerate(rooms):
            gt = encode_gt_ids(scannet20_to_nyu40(scene.semantic), scene.instance)
            for noise in NOISE:
                emb, voxel_sem, inverse, coords = _simulated(scene, i, noise)
                for strategy in STRATEGIES:
                    cfg = GroupingConfig(strategy=strategy, params=params)  # type: ignore[arg-type]
                    tic = time.perf_counter()
                    inst = to_nyu40(group_instances(emb, voxel_sem, inverse, cfg, coords))
                    elapsed = time.perf_counter() - tic
                    pairs[strategy, noise].append((gt, inst))
                    if noise != "tight":
                        continue  # time the tight case (a trained network) only
                    clustering[strategy].append(elapsed)
                    tic = time.perf_counter()
                    write_scannet_instances(f"{tmp}/{strategy}", f"scene{i:04d}_00", inst)
                    export[strategy].append(time.perf_counter() - tic)

    rows = {}
    for strategy in STRATEGIES:
        stage = {
            "semantic": passes["semantic"],
            "embedding": passes["embedding"],
            "clustering": float(np.mean(clustering[strategy])),
            "export": float(np.mean(export[strategy])),
        }
        total = sum(v for v in stage.values() if np.isfinite(v))
        rows[strategy] = {**stage, "total": total}
        for noise in NOISE:
            m = evaluate_instances(pairs[strategy, noise])
            rows[strategy].update({f"ap_{noise}": m.mean_ap, f"ap50_{noise}": m.ap50})
    base = rows["point"]
    for row in rows.values():
        row["speedup_total"] = base["total"] / row["total"]
        row["speedup_clustering"] = base["clustering"] / row["clustering"]
        row["speedup_clustering_export"] = (base["clustering"] + base["export"]) / (
            row["clustering"] + row["export"]
        )
        for noise in NOISE:
            row[f"ap_delta_{noise}"] = row[f"ap_{noise}"] - base[f"ap_{noise}"]

    fg = np.isin(rooms[0].semantic, range(2, 20)).sum()
    print(
        f"scene: {len(rooms[0].xyz)} points ({fg} foreground), {scenes} scene(s), model {model_name}"
    )
    print("seconds per scene; AP on simulated embeddings, tight / loose")
    print(f"{'strategy':<12}{'semantic':>9}{'embed':>8}{'cluster':>9}{'export':>8}{'total':>8}"
          f"{'x total':>8}{'x clus':>8}{'AP tight':>10}{'AP loose':>10}")  # fmt: skip
    for name, r in rows.items():
        print(f"{name:<12}{r['semantic']:>9.2f}{r['embedding']:>8.2f}{r['clustering']:>9.2f}{r['export']:>8.2f}"
              f"{r['total']:>8.2f}{r['speedup_total']:>8.2f}{r['speedup_clustering']:>8.2f}"
              f"{r['ap_tight']:>10.3f}{r['ap_loose']:>10.3f}")  # fmt: skip
    out = {
        "benchmark": "ssen-instance inference stages",
        "quick": args.quick,
        "model": None if args.no_model else model_name,
        "points_per_scene": len(rooms[0].xyz),
        "foreground_points": int(fg),
        "scenes": scenes,
        "cluster_params": params.__dict__,
        "noise": NOISE,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "strategies": rows,
        "reference": "point",
    }
    with open(args.json, "w") as handle:
        json.dump(out, handle, indent=2)


if __name__ == "__main__":
    main()
