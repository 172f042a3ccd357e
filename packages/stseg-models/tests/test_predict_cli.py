"""`stseg-models predict | list | describe`: outputs, formats, refusals and exit codes (H1, H2)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stseg_data.labels import SCANNET_NYU40_IDS
from stseg_data.ply import read_ply, write_ply
from stseg_models.checkpoint import dataset_preset, save_checkpoint
from stseg_models.cli import main
from stseg_models.zoo import build_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "scannet.pt"
    save_checkpoint(path, build_model("Res16UNet14A", 3, 20), dataset_preset("scannet"))
    return path


def _scene(path, n=600, seed=0, color=True):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(0, 1.0, size=(n, 3))
    write_ply(path, xyz, rng.uniform(0, 1, size=(n, 3)) if color else None)
    return path


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _ascii_ply(path, rows: list[str]) -> None:
    header = ["ply", "format ascii 1.0", f"element vertex {len(rows)}"]
    header += [f"property float {c}" for c in "xyz"] + [
        f"property uchar {c}" for c in ("red", "green", "blue")
    ]
    path.write_text("\n".join([*header, "end_header", *rows]) + "\n")


def test_predict_writes_coloured_ply_with_one_label_per_point(tmp_path, weights):
    src = _scene(tmp_path / "room.ply")
    out = tmp_path / "out"
    result = _run("predict", src, "--weights", weights, "--out", out)
    assert result.exit_code == 0, result.output
    cloud = read_ply(out / "room_pred.ply")
    assert len(cloud) == 600
    assert np.allclose(cloud.xyz, read_ply(src).xyz)
    assert set(np.unique(cloud.labels)) <= set(SCANNET_NYU40_IDS)
    assert cloud.rgb is not None and (cloud.rgb > 0).any()
    assert sorted(p.name for p in out.iterdir()) == ["room_pred.ply"]


def test_scannet_txt_is_benchmark_format(tmp_path, weights):
    src = _scene(tmp_path / "scene0011_00_vh_clean_2.ply", n=500)
    out = tmp_path / "out"
    result = _run(
        "predict", src, "-w", weights, "--out", out, "--format", "txt", "--rotations", "2"
    )
    assert result.exit_code == 0, result.output
    ids = np.loadtxt(out / "scene0011_00.txt", dtype=np.int64)
    assert ids.shape == (500,) and set(np.unique(ids)) <= set(SCANNET_NYU40_IDS)
    assert np.array_equal(read_ply(out / "scene0011_00_vh_clean_2_pred.ply").labels, ids)


def test_npy_format(tmp_path, weights):
    src = _scene(tmp_path / "a.ply", n=300)
    result = _run("predict", src, "-w", weights, "--out", tmp_path / "o", "--format", "npy")
    assert result.exit_code == 0, result.output
    labels = np.load(tmp_path / "o" / "a.npy")
    assert labels.dtype == np.int64 and labels.shape == (300,)


def test_refuses_to_overwrite_without_flag(tmp_path, weights):
    src = _scene(tmp_path / "a.ply", n=300)
    out = tmp_path / "o"
    assert _run("predict", src, "-w", weights, "--out", out).exit_code == 0
    target = out / "a_pred.ply"
    target.write_bytes(b"precious")
    result = _run("predict", src, "-w", weights, "--out", out)
    assert result.exit_code == 2
    assert "already exists" in result.stderr and "--overwrite" in result.stderr
    assert target.read_bytes() == b"precious"
    assert _run("predict", src, "-w", weights, "--out", out, "--overwrite").exit_code == 0
    assert len(read_ply(target)) == 300


def test_keep_going_finishes_good_scenes_and_exits_non_zero(tmp_path, weights):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    _scene(scenes / "a.ply", seed=1)
    bad = _scene(scenes / "b.ply", seed=2)
    bad.write_bytes(bad.read_bytes()[:-50])
    _scene(scenes / "c.ply", seed=3)
    out = tmp_path / "out"
    result = _run("predict", scenes, "-w", weights, "--out", out, "--keep-going")
    assert result.exit_code == 2
    assert sorted(p.name for p in out.iterdir()) == ["a_pred.ply", "c_pred.ply"]
    assert "predicted 2 of 3 scenes" in result.stderr and "b.ply" in result.stderr


def test_without_keep_going_stops_at_first_failure_keeping_finished_outputs(tmp_path, weights):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    _scene(scenes / "a.ply", seed=1)
    (scenes / "b.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\n")
    _scene(scenes / "c.ply", seed=3)
    out = tmp_path / "out"
    result = _run("predict", scenes, "-w", weights, "--out", out)
    assert result.exit_code == 2
    assert sorted(p.name for p in out.iterdir()) == ["a_pred.ply"]


@pytest.mark.parametrize("kind", ["empty", "truncated", "nan", "no_color"])
def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path, weights, kind):
    src = tmp_path / "bad.ply"
    if kind == "empty":
        _ascii_ply(src, [])
    elif kind == "nan":
        _ascii_ply(src, ["0 0 0 1 2 3", "nan 0 0 1 2 3"])
    elif kind == "truncated":
        _scene(src)
        src.write_bytes(src.read_bytes()[:-7])
    else:
        _scene(src, color=False)
    out = tmp_path / "out"
    result = _run("predict", src, "-w", weights, "--out", out)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "bad.ply" in lines[0]
    assert not out.exists() or not any(out.iterdir())
    if kind == "no_color":
        assert "--fill-color" in lines[0]
        ok = _run("predict", src, "-w", weights, "--out", out, "--fill-color", "0.5,0.5,0.5")
        assert ok.exit_code == 0, ok.output


def test_gadget_checkpoint_is_refused_by_the_cli(tmp_path):
    sentinel = tmp_path / "SENTINEL"

    class Gadget:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "cfg": Gadget()}, evil)
    src = _scene(tmp_path / "a.ply", n=50)
    result = _run("predict", src, "-w", evil, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "refused" in result.stderr
    assert not sentinel.exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_broken_weights_exit_2(tmp_path, content):
    bad = tmp_path / "w.pt"
    bad.write_bytes(content)
    result = _run("predict", _scene(tmp_path / "a.ply", n=50), "-w", bad, "--out", tmp_path / "o")
    assert result.exit_code == 2 and result.stderr.startswith("Error:")


def test_wrong_class_count_checkpoint_names_keys(tmp_path):
    model = build_model("Res16UNet14A", 3, 13)
    state = {"state_dict": model.state_dict()}
    torch.save(state, tmp_path / "s3dis13.pth")
    args = ("--model", "Res16UNet14A", "--dataset", "scannet")
    result = _run(
        "predict", _scene(tmp_path / "a.ply", n=50), "-w", tmp_path / "s3dis13.pth", *args
    )
    assert result.exit_code == 2
    assert "20 classes but the weights have 13" in result.stderr


def test_missing_input_and_bad_options(tmp_path, weights):
    assert _run("predict", tmp_path / "nope.ply", "-w", weights).exit_code == 2
    src = _scene(tmp_path / "a.ply", n=50)
    assert _run("predict", src, "-w", weights, "--rotations", "0").exit_code == 2
    assert _run("predict", src, "-w", weights, "--format", "las").exit_code == 2
    assert _run("predict", src, "-w", weights, "--fill-color", "2,0,0").exit_code == 2
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    result = _run("predict", empty_dir, "-w", weights)
    assert result.exit_code == 2 and "no .ply files" in result.stderr


def test_list_and_describe_commands():
    listed = _run("list")
    assert listed.exit_code == 0
    assert "Res16UNet34C" in listed.output.split() and len(listed.output.split()) == 68
    described = _run("describe", "Mink16UNet34C")
    assert described.exit_code == 0 and "37,846,644" in described.output
    unknown = _run("describe", "NoNet")
    assert unknown.exit_code == 2 and "unknown model 'NoNet'" in unknown.stderr


def test_predicting_into_the_input_folder_skips_earlier_predictions(tmp_path, weights):
    _scene(tmp_path / "a.ply", n=200)
    first = _run("predict", tmp_path, "-w", weights, "--out", tmp_path)
    assert first.exit_code == 0, first.output
    again = _run("predict", tmp_path, "-w", weights, "--out", tmp_path, "--overwrite")
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ply", "a_pred.ply"]
    assert len(read_ply(tmp_path / "a.ply")) == 200


def test_failed_second_output_removes_the_first(tmp_path, weights, monkeypatch):
    import stseg_data.atomic
    from stseg_data.errors import StsegRuntimeError

    def disk_full(path, mode="wb", *, overwrite=True):
        raise StsegRuntimeError(f"{path}: could not write (No space left on device, errno 28)")

    monkeypatch.setattr(stseg_data.atomic, "atomic_write", disk_full)
    src = _scene(tmp_path / "a.ply", n=100)
    result = _run("predict", src, "-w", weights, "--out", tmp_path / "o", "--format", "txt")
    assert result.exit_code == 1 and "No space left" in result.stderr
    assert not any((tmp_path / "o").iterdir())


def test_checkpoint_whose_weights_disagree_with_its_model_lists_the_keys(tmp_path, weights):
    payload = torch.load(weights, weights_only=True)
    payload["state_dict"] = build_model("Res16UNet14A", 3, 13).state_dict()
    torch.save(payload, tmp_path / "mixed.pt")
    result = _run("predict", _scene(tmp_path / "a.ply", n=50), "-w", tmp_path / "mixed.pt")
    assert result.exit_code == 2
    assert "does not match Res16UNet14A" in result.stderr
    assert "final.kernel: checkpoint [96, 13] vs model [96, 20]" in result.stderr


def test_4d_checkpoint_is_refused_by_predict_on_files(tmp_path):
    from stseg_models.checkpoint import dataset_preset as preset

    save_checkpoint(tmp_path / "st.pt", build_model("STRes16UNet14A", 3, 12), preset("synthia4d"))
    result = _run("predict", _scene(tmp_path / "a.ply", n=50), "-w", tmp_path / "st.pt")
    assert result.exit_code == 2 and "4D (space + time)" in result.stderr


def test_threads_option_sets_torch_threads_and_refuses_zero(tmp_path, weights):
    src = _scene(tmp_path / "t.ply", n=80)
    before = torch.get_num_threads()
    try:
        result = _run("predict", src, "-w", weights, "--out", tmp_path / "o", "--threads", "1")
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    bad = _run("predict", src, "-w", weights, "--out", tmp_path / "o2", "--threads", "0")
    assert bad.exit_code == 2 and "--threads" in bad.output
    assert not (tmp_path / "o2").exists()


def test_precision_bf16_runs_the_network_in_bf16_close_to_fp32(tmp_path, weights):
    from stseg_models.inference import Segmenter

    rng = np.random.default_rng(3)
    xyz, rgb = rng.uniform(0, 1.0, size=(800, 3)), rng.uniform(0, 1, size=(800, 3))
    fp32 = Segmenter.from_checkpoint(weights)
    bf16 = Segmenter.from_checkpoint(weights, precision="bf16")
    labels32, probs32 = fp32.predict(xyz, rgb)
    labels16, probs16 = bf16.predict(xyz, rgb)
    assert probs16.dtype == np.float32 and probs16.shape == probs32.shape
    diff = np.abs(probs16 - probs32).max()
    assert 0 < diff < 0.05, diff  # bf16 arithmetic (not fp32 again), ~0.4 % per rounding
    assert (labels16 == labels32).mean() > 0.9
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        Segmenter.from_checkpoint(weights, precision="fp8")


def test_precision_option_of_predict(tmp_path, weights):
    src = _scene(tmp_path / "room.ply")
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        result = _run("predict", src, "--weights", weights, "--out", out, "--format", "npy",
                      "--precision", precision)  # fmt: skip
        assert result.exit_code == 0, result.output
        assert len(np.load(out / "room.npy")) == 600
    same = np.load(tmp_path / "fp32" / "room.npy") == np.load(tmp_path / "bf16" / "room.npy")
    assert same.mean() > 0.9
    result = _run(
        "predict", src, "--weights", weights, "--out", tmp_path / "x", "--precision", "fp8"
    )
    assert result.exit_code == 2 and "'fp8' is not one of 'fp32', 'bf16', 'fp16'" in result.output
    assert not (tmp_path / "x").exists()
