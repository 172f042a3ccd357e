"""The command line end to end on tiny scenes and small networks, and its bad-input exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssen_instance.cli import main
from ssen_instance.export import read_scannet_instances
from ssen_instance.model import build_embedding_model, save_instance_checkpoint
from ssen_instance.scenes import SsenScene, instance_ids, write_ssen_scene
from ssen_instance.toy import toy_room
from stseg_data.ply import write_ply
from stseg_models.checkpoint import dataset_preset, save_checkpoint
from stseg_models.zoo import build_model

NAME = "Res16UNet14A"
SMALL = ["--min-cluster-size", "20"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ssen_cli")
    save_checkpoint(root / "sem.pt", build_model(NAME, 3, 20), dataset_preset("scannet"))
    save_instance_checkpoint(root / "inst.pt", build_embedding_model(NAME, 8))
    room = toy_room(num_objects=2, density=40.0, size=1.5, seed=2)
    scene = SsenScene(room.xyz, room.rgb, room.semantic, instance_ids(room.semantic, room.instance),
                      room.semantic, "scene0007_00")  # fmt: skip
    (root / "data").mkdir()
    write_ssen_scene(root / "data" / "scene0007_00_semantic_segment.pt", scene)
    write_ply(root / "scene0007_00.ply", room.xyz, room.rgb)
    return {"root": root, "sem": root / "sem.pt", "inst": root / "inst.pt", "data": root / "data",
            "ply": root / "scene0007_00.ply", "n": len(room.xyz)}  # type: ignore[dict-item]  # fmt: skip


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def test_predict_writes_benchmark_files(files: dict) -> None:
    out = files["root"] / "pred"
    code, output = _run(["predict", files["ply"], "--out", out, "--semantic-weights", files["sem"],
                         "--instance-weights", files["inst"], *SMALL])  # fmt: skip
    assert code == 0, output
    back = read_scannet_instances(out / "scene0007_00.txt", num_vertices=files["n"])
    assert back.num_points == files["n"]
    # refuses to overwrite without --overwrite (exit 2, one line)
    code, output = _run(["predict", files["ply"], "--out", out, "--semantic-weights", files["sem"],
                         "--instance-weights", files["inst"]])  # fmt: skip
    assert code == 2 and output.strip().startswith("Error:") and "overwrite" in output


def test_eval_writes_metrics(files: dict) -> None:
    out = files["root"] / "eval"
    code, output = _run(["eval", files["data"], "--semantic-weights", files["sem"],
                         "--instance-weights", files["inst"], "--out", out, "--stored-semantic", *SMALL])  # fmt: skip
    assert code == 0, output
    assert "average" in output and "otherfurniture" in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"ap", "ap50", "ap25", "classes", "seconds_per_scene"}
    assert len(metrics["classes"]) == 18 and metrics["num_scenes"] == 1
    assert (out / "pred" / "scene0007_00.txt").is_file()


def test_eval_threads_option(files: dict) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        code, output = _run(["eval", files["data"], "--semantic-weights", files["sem"],
                             "--instance-weights", files["inst"], "--out", files["root"] / "eval1",
                             "--stored-semantic", "--threads", "1", *SMALL])  # fmt: skip
        assert code == 0, output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    code, output = _run(["eval", files["data"], "--instance-weights", files["inst"],
                         "--stored-semantic", "--threads", "-2"])  # fmt: skip
    assert code == 2 and "--threads" in output


@pytest.mark.slow
def test_train_one_iteration(files: dict) -> None:
    out = files["root"] / "run"
    code, output = _run(["train", "--data", files["data"], "--semantic-weights", files["sem"],
                         "--out", out, "--model", NAME, "--max-iter", "1", "--batch-size", "1"])  # fmt: skip
    assert code == 0, output
    assert (out / "instance.pt").is_file() and (out / "checkpoints" / "final.pth").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["optimizer"] == "adam" and config["scheduler"] == "step"
    assert config["clip_grad_norm"] == 0.5 and config["step_gamma"] == 0.8
    code, output = _run(
        ["train", "--data", files["data"], "--out", out, "--model", NAME, "--max-iter", "2"]
    )
    assert code == 2 and "already exists" in output  # never clobbers a run


def test_bad_inputs_exit_2(files: dict, tmp_path: Path) -> None:
    nan_scene = tmp_path / "nan.ply"
    header = (
        "ply\nformat ascii 1.0\nelement vertex 3\n"
        + "".join(f"property float {c}\n" for c in "xyz")
        + "".join(f"property uchar {c}\n" for c in ("red", "green", "blue"))
        + "end_header\n"
    )
    nan_scene.write_text(header + "0 0 0 1 2 3\nnan 0 0 1 2 3\n1 1 1 1 2 3\n")
    code, output = _run(["predict", nan_scene, "--out", tmp_path / "o", "--semantic-weights",
                         files["sem"], "--instance-weights", files["inst"]])  # fmt: skip
    assert code == 2 and output.count("\n") == 1 and "Error:" in output
    empty = tmp_path / "empty"
    empty.mkdir()
    code, output = _run(["eval", empty, "--semantic-weights", files["sem"], "--instance-weights",
                         files["inst"], "--out", tmp_path / "e"])  # fmt: skip
    assert code == 2 and "no SSEN scene files" in output
    code, output = _run(["eval", files["data"], "--semantic-weights", files["inst"],
                         "--instance-weights", files["inst"], "--out", tmp_path / "e"])  # fmt: skip
    assert code == 2 and "20 ScanNet classes" in output
    code, output = _run(["eval", files["data"], "--semantic-weights", files["sem"],
                         "--instance-weights", files["sem"], "--out", tmp_path / "e"])  # fmt: skip
    assert code == 2 and "not an instance" in output
    code, output = _run(["eval", files["data"], "--instance-weights", files["inst"]])
    assert code == 2 and "--stored-semantic" in output


def test_precision_bf16_runs_both_networks_in_bf16(files: dict) -> None:
    from ssen_instance.inference import InstanceSegmenter
    from ssen_instance.scenes import read_ssen_scene

    scene = read_ssen_scene(files["data"] / "scene0007_00_semantic_segment.pt")
    runs = {}
    for precision in ("fp32", "bf16"):
        seg = InstanceSegmenter.from_checkpoints(files["sem"], files["inst"], precision=precision)
        assert seg.precision == precision
        runs[precision] = seg.predict(scene.xyz, scene.rgb)
    sem32, sem16 = runs["fp32"].semantic, runs["bf16"].semantic
    assert sem32.shape == sem16.shape and (sem32 == sem16).mean() > 0.9
    assert runs["fp32"].instances.num_points == runs["bf16"].instances.num_points == len(scene.xyz)
    out = files["root"] / "pred_bf16"
    code, output = _run(["predict", files["ply"], "--out", out, "--semantic-weights", files["sem"],
                         "--instance-weights", files["inst"], "--precision", "bf16", *SMALL])  # fmt: skip
    assert code == 0, output
    assert (
        read_scannet_instances(out / "scene0007_00.txt", num_vertices=files["n"]).num_points
        == files["n"]
    )
    code, output = _run(["eval", files["data"], "--semantic-weights", files["sem"], "--instance-weights",
                         files["inst"], "--out", files["root"] / "e8", "--precision", "fp8"])  # fmt: skip
    assert code == 2 and "fp8" in output and not (files["root"] / "e8").exists()
    with pytest.raises(Exception, match="precision must be one of"):
        InstanceSegmenter.from_checkpoints(files["sem"], files["inst"], precision="fp8")
