"""The `ssen-instance` command line: a thin Click layer over the library."""

from __future__ import annotations

import json
import logging

import click
from click.core import ParameterSource

from ssen_instance import __version__
from stseg_data.cli_options import (
    device_option,
    out_option,
    overwrite_option,
    precision_option,
    resume_option,
    resumed_folder,
    rotations_option,
    threads_option,
)
from stseg_data.cli_support import StsegGroup


@click.group(cls=StsegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ssen-instance")
def main() -> None:
    """ssen-instance: see `ssen-instance COMMAND --help`."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")


def _cluster_options(fn):
    options = [
        click.option("--strategy", type=click.Choice(["point", "voxel", "voxel_class", "cell"]),
                     default="cell", show_default=True, help="Clustering strategy (point = original SSEN)."),
        click.option("--min-cluster-size", type=click.IntRange(min=2), default=200, show_default=True,
                     help="HDBSCAN: points (voxels, cells) in the smallest instance."),
        click.option("--min-samples", type=click.IntRange(min=1), default=None,
                     help="HDBSCAN min_samples (default: --min-cluster-size)."),
        click.option("--cluster-epsilon", type=float, default=0.0, show_default=True,
                     help="HDBSCAN cluster_selection_epsilon (> 0 may fail under NumPy 2: scikit-learn #33219)."),
        click.option("--score", type=click.Choice(["vote_size", "vote", "vote_membership"]), default="vote_size",
                     show_default=True, help="Instance confidence: vote share, x log points (vote_size), or x HDBSCAN membership."),
        rotations_option,
        device_option,
        precision_option(),
        threads_option(),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def _grouping(
    strategy: str, min_cluster_size: int, min_samples: int | None, epsilon: float, score: str
):
    from ssen_instance.cluster import ClusterParams
    from ssen_instance.grouping import GroupingConfig

    params = ClusterParams(
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        cluster_selection_epsilon=epsilon,
    )
    return GroupingConfig(strategy=strategy, params=params, score=score)  # type: ignore[arg-type]


@main.command()
@click.option("--data", type=click.Path(exists=True), default=None,
              help="SSEN scene file or folder (a resumed run keeps its own unless given).")  # fmt: skip
@click.option("--semantic-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Semantic checkpoint to initialise the backbone from.")  # fmt: skip
@out_option("Run folder (must not exist).")
@click.option("--recipe", type=click.Choice(["ssen", "synthetic-cpu"]), default=None,
              help="ssen (default): the original (Mink16UNet34C, 2 cm, Adam 1e-4, batch 8, 60k "
                   "iterations); synthetic-cpu: 20 CPU minutes on synthetic scenes (Res16UNet14F, "
                   "5 cm, Adam 1e-3, batch 2, 700 iterations). Options below override the recipe.")  # fmt: skip
@click.option("--model", default=None, help="Registry backbone (recipe: Mink16UNet34C).")
@click.option("--embedding-dim", type=int, default=None, help="Embedding size (default 8).")
@click.option("--max-iter", type=int, default=None, help="Iterations (recipe: 60000).")
@click.option("--batch-size", type=int, default=None, help="Scenes per step (recipe: 8).")
@click.option("--lr", type=float, default=None, help="Adam learning rate (recipe: 1e-4).")
@click.option("--save-freq", type=int, default=None, help="Checkpoint every N (recipe: 1000).")
@click.option("--voxel-size", type=float, default=None, help="Metres (recipe: 0.02).")
@click.option("--gpus", type=int, default=0, help="Processes on GPUs (torch.distributed, NCCL).")
@click.option("--procs", type=int, default=0, help="CPU processes (gloo).")
@threads_option(default="the recipe's (synthetic-cpu: 1), else all cores", expose=True)
@precision_option(default=None)
@resume_option
@click.option("--restart-from-scratch", is_flag=True,
              help="With --resume: start over when no checkpoint of the run is valid.")  # fmt: skip
def train(data, semantic_weights, out, recipe, model, embedding_dim, max_iter, batch_size, lr,
          save_freq, voxel_size, gpus, procs, threads, precision, resume, restart_from_scratch) -> None:  # fmt: skip
    """Train the embedding network (through stseg-train's trainer)."""
    from ssen_instance.train import command_config, train_instance

    config, resuming = command_config(
        data=data, out=None if out is None else str(out), resume=resume, recipe=recipe, semantic_weights=semantic_weights,
        embedding_dim=embedding_dim, model=model, max_iter=max_iter, batch_size=batch_size, lr=lr,
        save_freq=save_freq, voxel_size=voxel_size, threads=threads, precision=precision,
    )  # fmt: skip
    train_instance(config, gpus=gpus, procs=procs, resume=resuming,
                   restart_from_scratch=restart_from_scratch)  # fmt: skip
    click.echo(f"instance checkpoint: {config.out}/instance.pt")


@main.command("eval")
@click.argument("scenes", type=click.Path(exists=True))
@click.option("--semantic-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Semantic checkpoint (required unless --stored-semantic).")  # fmt: skip
@click.option("--instance-weights", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Embedding checkpoint (ssen-instance train).")  # fmt: skip
@out_option("Folder for metrics.json and the predictions.", default="ssen-eval")
@overwrite_option("Write into a non-empty --out, replacing the files this evaluation writes.")
@click.option("--stored-semantic", is_flag=True,
              help="Use the scene files' predicted-semantic column instead of the semantic pass.")  # fmt: skip
@_cluster_options
def evaluate(scenes, semantic_weights, instance_weights, out, overwrite, stored_semantic, strategy,
             min_cluster_size, min_samples, cluster_epsilon, score, rotations, device, precision) -> None:  # fmt: skip
    """ScanNet instance AP over SSEN scene files (SCENE.pt or a folder)."""
    from ssen_instance.pipeline import make_segmenter, plan_evaluation, run_evaluation

    if semantic_weights is None and not stored_semantic:
        raise click.UsageError("pass --semantic-weights S, or --stored-semantic")
    grouping = _grouping(strategy, min_cluster_size, min_samples, cluster_epsilon, score)
    # every scene file and the output folder are checked before the networks are loaded
    plan = plan_evaluation(scenes, out, overwrite=overwrite)
    segmenter = make_segmenter(semantic_weights, instance_weights, grouping, rotations=rotations,
                               device=device, precision=precision)  # fmt: skip
    metrics = run_evaluation(plan, segmenter, stored_semantic=stored_semantic)
    click.echo(metrics.table())
    click.echo(f"metrics: {out}/metrics.json")


@main.command()
@click.argument("scene", type=click.Path(exists=True, dir_okay=False))
@out_option("Output folder (benchmark format).", required=True)
@click.option("--semantic-weights", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Semantic checkpoint (stseg-train).")  # fmt: skip
@click.option("--instance-weights", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Embedding checkpoint (ssen-instance train).")  # fmt: skip
@overwrite_option("Replace this scene's earlier prediction in --out (its index and mask files).")
@_cluster_options
def predict(scene, out, semantic_weights, instance_weights, overwrite, strategy, min_cluster_size,
            min_samples, cluster_epsilon, score, rotations, device, precision) -> None:  # fmt: skip
    """Instances of SCENE (.ply or SSEN .pt) in the ScanNet benchmark format.

    OUT may hold other scenes' predictions (the benchmark's one folder for all scenes); only an
    earlier prediction of this scene is refused without --overwrite.
    """
    from ssen_instance.pipeline import make_segmenter, predict_cloud, prepare_predict
    from ssen_instance.scenes import scene_name

    grouping = _grouping(strategy, min_cluster_size, min_samples, cluster_epsilon, score)
    cloud = prepare_predict(scene, out, overwrite=overwrite)  # before the networks are loaded
    segmenter = make_segmenter(semantic_weights, instance_weights, grouping, rotations=rotations,
                               device=device, precision=precision)  # fmt: skip
    index, pred = predict_cloud(cloud, scene_name(scene), out, segmenter)
    click.echo(f"{index}: {len(pred.instances)} instances")


@main.command()
@click.argument("raw", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path())
@click.option("--semantic-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Semantic checkpoint for the prediction column (default: ground truth).")  # fmt: skip
@overwrite_option("Write into a non-empty OUT, replacing the scene files made now.")
def preprocess(raw, out, semantic_weights, overwrite) -> None:
    """ScanNet raw scans (RAW/scans/<scene>/...) -> SSEN N x 9 scene files in OUT.

    The files appear in OUT only when every scene is done: a failed run leaves OUT as it was.
    """
    from ssen_instance.scenes import preprocess_scannet

    summary = preprocess_scannet(raw, out, semantic_weights=semantic_weights, overwrite=overwrite)
    click.echo(json.dumps(summary))


@main.command()
@out_option("Demo folder (new or empty, unless --overwrite).", default="runs/demo-instance")
@resume_option
@overwrite_option("Start the demo in --out again: the earlier demo's files there are removed "
                  "(only a demo folder: one with demo.json).")  # fmt: skip
@click.option("--semantic-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Reuse this semantic checkpoint instead of training the semantic main job.")  # fmt: skip
@click.option("--rooms", type=int, default=None,
              help="Synthetic rooms, one in five held out (default: the main job's 100).")  # fmt: skip
@click.option("--semantic-max-iter", type=int, default=None,
              help="Semantic training iterations (default: the main job's recipe, 720).")  # fmt: skip
@click.option("--semantic-set", "semantic_sets", multiple=True, metavar="KEY=VALUE",
              help="Any semantic training config key (stseg-train --set), repeatable.")  # fmt: skip
@click.option("--recipe", type=click.Choice(["synthetic-cpu", "ssen"]), default=None,
              help="Embedding recipe (default synthetic-cpu).")  # fmt: skip
@click.option("--max-iter", type=int, default=None,
              help="Embedding training iterations (default: the recipe's).")  # fmt: skip
@click.option("--save-freq", type=int, default=None,
              help="Embedding checkpoint every N iterations (default: the recipe's).")  # fmt: skip
@click.option("--strategy", type=click.Choice(["point", "voxel", "voxel_class", "cell"]),
              default=None, help="Clustering strategy (default cell).")  # fmt: skip
@threads_option(default="each recipe's; may change on --resume", expose=True)
@precision_option(default=None)
@click.option("--no-progress", is_flag=True,
              help="Log lines instead of progress bars (e.g. when the output goes to a file).")  # fmt: skip
@click.option("--no-view", is_flag=True,
              help="Skip the PNG / HTML views (they need stseg-viz).")  # fmt: skip
def demo(out, resume, overwrite, semantic_weights, rooms, semantic_max_iter, semantic_sets,
         recipe, max_iter, save_freq, strategy, threads, precision, no_progress, no_view) -> None:  # fmt: skip
    """From nothing: synthetic rooms, semantic training, SSEN training, AP on held-out rooms.

    Writes OUT/metrics.json (AP / AP50 / AP25 with predicted and with ground-truth semantics,
    stage times), OUT/example (one held-out room in the ScanNet benchmark format, PNG, HTML).
    """
    from ssen_instance.demo import format_summary, run_demo

    given = dict(
        semantic_weights=semantic_weights, rooms=rooms, semantic_max_iter=semantic_max_iter,
        semantic_sets=tuple(semantic_sets) or None, recipe=recipe, max_iter=max_iter,
        save_freq=save_freq, strategy=strategy, threads=threads, precision=precision,
        view=False if no_view else None, progress=False if no_progress else None,
    )  # fmt: skip
    source = click.get_current_context().get_parameter_source("out")
    out = resumed_folder(out, resume, "--out", out_given=source != ParameterSource.DEFAULT)
    metrics = run_demo(out, given, resume=resume is not None, overwrite=overwrite)
    click.echo(format_summary(metrics))
    click.echo(f"metrics: {out}/metrics.json")
