"""Issue #24 for `ssen-instance eval`, `predict`, `preprocess` and `demo`, run as users run them.

Each writing command: an existing output is refused (exit 2, one line, no byte of it or of the
inputs changed) before any model is loaded; `--overwrite` replaces what the command writes and
nothing else; a read-only or full output folder ends as one line naming it (exit 1) with nothing
left behind; written files get the umask's mode; bad inputs are refused before a folder exists.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ssen_instance.demo_settings import SETTINGS_FILE, open_demo_dir
from ssen_instance.errors import InstanceInputError
from ssen_instance.export import read_scannet_instances
from ssen_instance.model import build_embedding_model, save_instance_checkpoint
from ssen_instance.pipeline import STAGE_PREFIX
from ssen_instance.scenes import SsenScene, instance_ids, write_ssen_scene
from ssen_instance.toy import toy_room
from stseg_data.ply import write_ply
from stseg_data.testing import constrained_supported, error_line, file_fingerprint, run_cli
from stseg_models.checkpoint import dataset_preset, save_checkpoint
from stseg_models.zoo import build_model

TOOL = str(Path(sys.executable).parent / "ssen-instance")
NAME = "Res16UNet14A"
SCENE = "scene0007_00"
SMALL = ["--min-cluster-size", "20"]
LISTING = "@@listing"
needs_mounts = pytest.mark.skipif(
    not constrained_supported(), reason="needs unshare -rm (private tmpfs mounts)"
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small networks, one SSEN scene (.pt and .ply), one raw ScanNet scan, a garbage checkpoint."""
    from stseg_data.synth import write_synthetic

    root = tmp_path_factory.mktemp("ssen_safety")
    inputs = root / "inputs"
    inputs.mkdir()
    save_checkpoint(inputs / "sem.pt", build_model(NAME, 3, 20), dataset_preset("scannet"))
    save_instance_checkpoint(inputs / "inst.pt", build_embedding_model(NAME, 8))
    room = toy_room(num_objects=2, density=40.0, size=1.5, seed=2)
    scene = SsenScene(room.xyz, room.rgb, room.semantic, instance_ids(room.semantic, room.instance),
                      room.semantic, SCENE)  # fmt: skip
    (inputs / "data").mkdir()
    write_ssen_scene(inputs / "data" / f"{SCENE}_semantic_segment.pt", scene)
    write_ply(inputs / f"{SCENE}.ply", room.xyz, room.rgb)
    write_synthetic("scannet", inputs / "raw", 1, seed=3, spacing=0.12)
    # loading this would fail: a command refused before it reads the weights never notices
    (inputs / "garbage.pt").write_bytes(b"not a checkpoint")
    return {"root": root, "inputs": inputs, "sem": inputs / "sem.pt", "inst": inputs / "inst.pt",
            "data": inputs / "data", "ply": inputs / f"{SCENE}.ply", "raw": inputs / "raw",
            "garbage": inputs / "garbage.pt"}  # fmt: skip


def _eval(files: dict, out: Path, *extra: object, weights: str = "inst") -> list[str]:
    return [TOOL, "eval", str(files["data"]), "--stored-semantic", "--instance-weights",
            str(files[weights]), "--out", str(out), *SMALL, *map(str, extra)]  # fmt: skip


def _predict(files: dict, out: Path, *extra: object, weights: str = "inst") -> list[str]:
    return [TOOL, "predict", str(files["ply"]), "--out", str(out), "--semantic-weights",
            str(files["sem"]), "--instance-weights", str(files[weights]), *SMALL,
            *map(str, extra)]  # fmt: skip


def _preprocess(files: dict, out: Path, *extra: object) -> list[str]:
    return [TOOL, "preprocess", str(files["raw"]), str(out), *map(str, extra)]


def _refused(argv: list[str], files: dict, owned: Path, code: int = 2) -> str:
    """Run a command that must be refused; asserts nothing under `owned` or the inputs changed."""
    before = file_fingerprint(owned), file_fingerprint(files["inputs"])
    result = run_cli(argv)
    assert result.returncode == code, result.stdout + result.stderr
    line = error_line(result.stderr)
    assert (file_fingerprint(owned), file_fingerprint(files["inputs"])) == before
    return line


def _in_folder(folder: Path, *argv: str, umask: str | None = None, fill: bool = False) -> list[str]:
    """`argv` in a shell that may set the umask and fill `folder` first, then lists what `folder`
    holds after the command (inside a private mount that listing is the only way to see it)."""
    script = (("umask " + umask + "; ") if umask else "") + (
        'cat /dev/zero > "$0/filler" 2>/dev/null; ' if fill else ""
    )
    script += f'"$@"; rc=$?; echo {LISTING}; find "$0" -mindepth 1 | sort; exit $rc'
    return ["sh", "-c", script, str(folder), *argv]


def _listing(stdout: str, folder: Path) -> list[str]:
    names = stdout.split(LISTING, 1)[1].split()
    return [str(Path(n).relative_to(folder)) for n in names]


def _modes(folder: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


# ---- eval ----


def test_eval_refuses_a_non_empty_out_before_loading_the_networks(files, tmp_path) -> None:
    out = tmp_path / "ssen-eval"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = _refused(_eval(files, out, weights="garbage"), files, out)
    assert line == f"Error: {out}: folder is not empty (pass --overwrite to replace it)"


def test_eval_default_out_is_refused_too(files, tmp_path) -> None:
    (tmp_path / "ssen-eval").mkdir()
    (tmp_path / "ssen-eval" / "metrics.json").write_text("{}")
    argv = [TOOL, "eval", str(files["data"]), "--stored-semantic", "--instance-weights",
            str(files["garbage"])]  # fmt: skip
    before = file_fingerprint(tmp_path)
    result = run_cli(argv, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "ssen-eval: folder is not empty" in error_line(result.stderr)
    assert file_fingerprint(tmp_path) == before


def test_eval_overwrite_replaces_its_own_files_only(files, tmp_path) -> None:
    out = tmp_path / "eval"
    first = run_cli(_eval(files, out))
    assert first.returncode == 0, first.stderr
    (out / "notes.txt").write_text("mine")
    (out / "metrics.json").write_text("old")
    stale = out / "pred" / "pred_mask" / f"{SCENE}_99.txt"
    stale.write_text("1\n")
    again = run_cli(_eval(files, out, "--overwrite"))
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "metrics.json").read_text())["num_scenes"] == 1
    assert (out / "notes.txt").read_text() == "mine"
    assert not stale.exists()  # a mask of this scene its new index does not name
    pred = read_scannet_instances(out / "pred" / f"{SCENE}.txt")
    masks = sorted(p.name for p in (out / "pred" / "pred_mask").iterdir())
    assert masks == sorted(f"{SCENE}_{k}.txt" for k in range(len(pred)))
    assert not any(p.name.startswith(STAGE_PREFIX) for p in out.rglob("*"))


def _bad_scene(kind: str, path: Path) -> None:
    table = torch.zeros(50, 9)
    table[:, :3] = torch.rand(50, 3)
    table[:, 6] = 3
    if kind == "malformed":  # a real tensor file cut in half
        torch.save(table, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return
    if kind == "shape":
        table = torch.zeros(50, 4)
    elif kind == "nan":
        table[7, 1] = float("nan")
    elif kind == "label":
        table[4, 6] = 25
    elif kind == "empty":
        table = torch.zeros(0, 9)
    torch.save(table, path)


BAD_SCENES = {
    "malformed": "",  # torch's wording varies: the file named is what is checked
    "shape": "[N, 9]",
    "nan": "non-finite coordinates, first at row 7",
    "label": "semantic id 25 at row 4",
    "empty": "0 points",
}


@pytest.mark.parametrize("kind", sorted(BAD_SCENES))
def test_eval_bad_scene_named_before_any_output(files, tmp_path, kind) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    # a good scene first: the bad one is found before any scene is evaluated
    write_ssen_scene(folder / "a_semantic_segment.pt", _tiny_scene())
    bad = folder / "b_semantic_segment.pt"
    _bad_scene(kind, bad)
    out = tmp_path / "out" / "eval"
    # garbage weights: the scene is checked before any network is loaded. A folder of scenes for
    # every kind; the one file given alone once (the same check; each run costs seconds)
    for target in (folder, bad) if kind == "nan" else (folder,):
        argv = [TOOL, "eval", str(target), "--stored-semantic", "--instance-weights",
                str(files["garbage"]), "--out", str(out)]  # fmt: skip
        line = _refused(argv, files, folder)
        assert line.startswith(f"Error: {bad}: ") and BAD_SCENES[kind] in line, line
        assert not (tmp_path / "out").exists()


def _tiny_scene() -> SsenScene:
    xyz = np.random.default_rng(0).random((40, 3))
    labels = np.full(40, 3, np.int64)
    return SsenScene(
        xyz, np.zeros((40, 3), np.float32), labels, np.zeros(40, np.int64), labels, "a"
    )


def test_eval_missing_scene_file(files, tmp_path) -> None:
    missing = tmp_path / "nowhere.pt"
    argv = [TOOL, "eval", str(missing), "--stored-semantic", "--instance-weights",
            str(files["inst"]), "--out", str(tmp_path / "eval")]  # fmt: skip
    result = run_cli(argv)
    assert result.returncode == 2
    assert str(missing) in error_line(result.stderr) and "does not exist" in result.stderr
    assert sorted(tmp_path.iterdir()) == []


@needs_mounts
def test_eval_read_only_out(files, tmp_path) -> None:
    folder = tmp_path / "ro"
    out = folder / "eval"
    # garbage weights: the folder is found unwritable before any network is loaded
    result = run_cli(_in_folder(folder, *_eval(files, out, weights="garbage")),
                     constrained=(folder, "readonly"))  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert error_line(result.stderr) == (
        f"Error: {out}: cannot write there (Read-only file system, EROFS)"
    )
    assert _listing(result.stdout, folder) == []


@needs_mounts
def test_eval_full_out_leaves_nothing(files, tmp_path) -> None:
    folder = tmp_path / "full"
    out = folder / "eval"
    result = run_cli(
        _in_folder(folder, *_eval(files, out), fill=True), constrained=(folder, "full")
    )
    assert result.returncode == 1, result.stdout + result.stderr
    line = error_line(result.stderr)
    assert line.startswith(f"Error: {out}: could not write the output (No space left on device, "
                           "ENOSPC)"), line  # fmt: skip
    assert _listing(result.stdout, folder) == ["filler"]  # no folder, no partial file


@pytest.mark.parametrize(("umask", "mode"), [("022", 0o644), ("027", 0o640)])
def test_eval_files_get_the_umask_mode(files, tmp_path, umask, mode) -> None:
    out = tmp_path / "eval"
    result = run_cli(_in_folder(tmp_path, *_eval(files, out), umask=umask))
    assert result.returncode == 0, result.stderr
    assert (out / "metrics.json").is_file() and _modes(out) == {mode}


# ---- predict ----


def test_predict_refuses_an_earlier_prediction_before_loading_the_networks(files, tmp_path) -> None:
    out = tmp_path / "pred"
    (out / "pred_mask").mkdir(parents=True)
    (out / f"{SCENE}.txt").write_text("pred_mask/scene0007_00_0.txt 5 0.9\n")
    (out / "pred_mask" / f"{SCENE}_0.txt").write_text("1\n")
    line = _refused(_predict(files, out, weights="garbage"), files, out)
    assert line == (f"Error: {out / SCENE}.txt: already exists and 1 more of its files "
                    "(pass --overwrite to replace them)")  # fmt: skip
    # a mask file alone (an index removed by hand) is an earlier prediction too
    (out / f"{SCENE}.txt").unlink()
    line = _refused(_predict(files, out, weights="garbage"), files, out)
    assert line.startswith(f"Error: {out / 'pred_mask' / SCENE}_0.txt: already exists")


def test_predict_overwrite_replaces_this_scene_only(files, tmp_path) -> None:
    out = tmp_path / "pred"
    (out / "pred_mask").mkdir(parents=True)
    other = {
        "scene0001_00.txt": "pred_mask/scene0001_00_0.txt 5 0.9\n",
        "pred_mask/scene0001_00_0.txt": "1\n0\n",
        f"pred_mask/{SCENE}0_1.txt": "1\n",
    }  # fmt: skip  (another scene's name, not ours)
    for name, text in other.items():
        (out / name).write_text(text)
    kept = file_fingerprint(out)
    first = run_cli(_predict(files, out))
    assert first.returncode == 0, first.stderr
    stale = out / "pred_mask" / f"{SCENE}_99.txt"
    stale.write_text("1\n")
    again = run_cli(_predict(files, out, "--overwrite"))
    assert again.returncode == 0, again.stderr
    assert not stale.exists()
    now = file_fingerprint(out)
    assert {name: now[name] for name in kept} == kept  # other scenes' files untouched
    pred = read_scannet_instances(out / f"{SCENE}.txt")
    ours = sorted(n for n in now if n.startswith(f"pred_mask/{SCENE}_"))
    assert ours == sorted(f"pred_mask/{SCENE}_{k}.txt" for k in range(len(pred)))
    assert not any(p.name.startswith(STAGE_PREFIX) for p in out.rglob("*"))


def test_predict_bad_scene_leaves_no_folder(files, tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    _bad_scene("nan", bad)
    argv = [TOOL, "predict", str(bad), "--out", str(tmp_path / "o" / "pred"), "--semantic-weights",
            str(files["garbage"]), "--instance-weights", str(files["garbage"])]  # fmt: skip
    line = _refused(argv, files, tmp_path)
    assert line.startswith(f"Error: {bad}: ") and "non-finite" in line
    assert not (tmp_path / "o").exists()


@needs_mounts
def test_predict_read_only_out(files, tmp_path) -> None:
    folder = tmp_path / "ro"
    result = run_cli(_in_folder(folder, *_predict(files, folder, weights="garbage")),
                     constrained=(folder, "readonly"))  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert error_line(result.stderr) == (
        f"Error: {folder}: cannot write there (Read-only file system, EROFS)"
    )
    assert _listing(result.stdout, folder) == []


@needs_mounts
def test_predict_full_out_leaves_nothing(files, tmp_path) -> None:
    folder = tmp_path / "full"
    out = folder / "pred"
    result = run_cli(_in_folder(folder, *_predict(files, out), fill=True),
                     constrained=(folder, "full"))  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert error_line(result.stderr).startswith(
        f"Error: {out}: could not write the output (No space left on device, ENOSPC)"
    )
    assert _listing(result.stdout, folder) == ["filler"]


@pytest.mark.parametrize(("umask", "mode"), [("022", 0o644), ("027", 0o640)])
def test_predict_files_get_the_umask_mode(files, tmp_path, umask, mode) -> None:
    out = tmp_path / "pred"
    result = run_cli(_in_folder(tmp_path, *_predict(files, out), umask=umask))
    assert result.returncode == 0, result.stderr
    assert (out / f"{SCENE}.txt").is_file() and _modes(out) == {mode}


# ---- preprocess ----


def test_preprocess_refuses_a_non_empty_out(files, tmp_path) -> None:
    out = tmp_path / "scenes"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = _refused(_preprocess(files, out), files, out)
    assert line == f"Error: {out}: folder is not empty (pass --overwrite to replace it)"


def test_preprocess_overwrite_replaces_its_files(files, tmp_path) -> None:
    out = tmp_path / "scenes"
    first = run_cli(_preprocess(files, out))
    assert first.returncode == 0, first.stderr
    (made,) = [p for p in out.iterdir()]
    made.write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    again = run_cli(_preprocess(files, out, "--overwrite"))
    assert again.returncode == 0, again.stderr
    assert made.read_bytes() != b"old" and torch.load(made, weights_only=True).shape[1] == 9
    assert sorted(p.name for p in out.iterdir()) == sorted([made.name, "notes.txt"])


def test_preprocess_bad_raw_folder_leaves_no_folder(files, tmp_path) -> None:
    raw = tmp_path / "raw"
    (raw / "scans").mkdir(parents=True)
    line = _refused([TOOL, "preprocess", str(raw), str(tmp_path / "o" / "scenes")], files, raw)
    assert (
        line
        == f"Error: {raw / 'scans'}: no ScanNet scenes (expected <scene>/<scene>_vh_clean_2.ply)"
    )
    assert not (tmp_path / "o").exists()


@needs_mounts
def test_preprocess_read_only_out(files, tmp_path) -> None:
    folder = tmp_path / "ro"
    out = folder / "scenes"
    result = run_cli(_in_folder(folder, *_preprocess(files, out)), constrained=(folder, "readonly"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert error_line(result.stderr) == (
        f"Error: {out}: cannot write there (Read-only file system, EROFS)"
    )
    assert _listing(result.stdout, folder) == []


@needs_mounts
def test_preprocess_full_out_leaves_nothing(files, tmp_path) -> None:
    folder = tmp_path / "full"
    out = folder / "scenes"
    # no filler: one scene file (36 bytes a point) is larger than the 64 KiB folder
    result = run_cli(_in_folder(folder, *_preprocess(files, out)), constrained=(folder, "full"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert error_line(result.stderr).startswith(
        f"Error: {out}: could not write the output (No space left on device, ENOSPC)"
    )
    assert _listing(result.stdout, folder) == []


@pytest.mark.parametrize(("umask", "mode"), [("022", 0o644), ("027", 0o640)])
def test_preprocess_files_get_the_umask_mode(files, tmp_path, umask, mode) -> None:
    out = tmp_path / "scenes"
    result = run_cli(_in_folder(tmp_path, *_preprocess(files, out), umask=umask))
    assert result.returncode == 0, result.stderr
    assert len(list(out.iterdir())) == 1 and _modes(out) == {mode}


# ---- demo ----


def _demo(out: Path, *extra: str) -> list[str]:
    return [TOOL, "demo", "--out", str(out), "--rooms", "5", "--no-view", "--no-progress", *extra]


def _earlier_demo(run: Path) -> None:
    (run / "data" / "raw").mkdir(parents=True)
    (run / "data" / "raw" / "room.ply").write_text("ply")
    (run / SETTINGS_FILE).write_text(json.dumps({"rooms": 5, "view": False}))
    # a ledger saying the data stage is done: a demo that kept it would skip that stage
    (run / "stages.json").write_text(json.dumps({"data": {"rooms": 5, "seconds": 1.0}}))
    (run / "notes.txt").write_text("mine")


def test_demo_refuses_an_existing_demo(files, tmp_path) -> None:
    run = tmp_path / "demo"
    _earlier_demo(run)
    line = _refused(_demo(run), files, run)
    assert line == (f"Error: {run}: already exists; pass --resume {run} to continue that demo, "
                    "--overwrite to start it again, or choose another --out")  # fmt: skip
    line = _refused(_demo(run, "--resume", str(run), "--overwrite"), files, run)
    assert "pass one of them" in line


def test_demo_overwrite_refuses_a_folder_that_is_not_a_demo(files, tmp_path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.txt").write_text("mine")
    line = _refused(_demo(tmp_path, "--overwrite"), files, tmp_path)
    assert line.startswith(f"Error: {tmp_path}: already exists and is not a demo folder")


def test_demo_overwrite_refuses_to_remove_the_weights_it_reuses(files, tmp_path) -> None:
    run = tmp_path / "demo"
    _earlier_demo(run)
    weights = run / "semantic" / "final.pth"
    weights.parent.mkdir()
    weights.write_bytes(b"weights")
    line = _refused(_demo(run, "--overwrite", "--semantic-weights", str(weights)), files, run)
    assert "inside the demo that --overwrite would remove" in line


def test_demo_overwrite_removes_the_earlier_demo_only(tmp_path) -> None:
    run = tmp_path / "demo"
    _earlier_demo(run)
    settings = open_demo_dir(run, {"rooms": 10, "view": False}, resume=False, overwrite=True)
    assert settings.rooms == 10
    assert sorted(p.name for p in run.iterdir()) == [SETTINGS_FILE, "notes.txt"]
    assert json.loads((run / SETTINGS_FILE).read_text())["rooms"] == 10
    with pytest.raises(InstanceInputError, match="already exists; pass --resume"):
        open_demo_dir(run, {"rooms": 10}, resume=False)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_demo_settings_file_gets_the_umask_mode(tmp_path, umask, mode) -> None:
    previous = os.umask(umask)
    try:
        open_demo_dir(tmp_path / "demo", {"view": False}, resume=False)
    finally:
        os.umask(previous)
    assert _modes(tmp_path / "demo") == {mode}


@needs_mounts
def test_demo_read_only_out(files, tmp_path) -> None:
    folder = tmp_path / "ro"
    run = folder / "demo"
    result = run_cli(_in_folder(folder, *_demo(run)), constrained=(folder, "readonly"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert error_line(result.stderr) == (
        f"Error: {run}: cannot write there (Read-only file system, EROFS)"
    )
    assert _listing(result.stdout, folder) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_overwrite_runs_a_new_demo_with_the_umask_mode(tmp_path) -> None:
    run = tmp_path / "demo"
    _earlier_demo(run)
    notes = file_fingerprint(run)["notes.txt"]
    tiny = ["--semantic-max-iter", "2", "--max-iter", "2", "--save-freq", "2", "--threads", "1",
            "--semantic-set", "save_freq=2", "--semantic-set", "eval_rotations=1"]  # fmt: skip
    result = run_cli(_in_folder(tmp_path, *_demo(run, "--overwrite", *tiny), umask="027"),
                     timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (run / "data" / "raw" / "room.ply").exists()  # the earlier demo's file is gone
    assert file_fingerprint(run)["notes.txt"] == notes  # the user's file is not
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["rooms"] == {"all": 5, "held_out": 1}
    assert "already complete" not in result.stdout + result.stderr  # no earlier stage reused
    demo_files = [p for p in run.rglob("*") if p.is_file() and p.name != "notes.txt"]
    assert len(demo_files) > 20
    assert {stat.S_IMODE(p.stat().st_mode) for p in demo_files} == {0o640}
