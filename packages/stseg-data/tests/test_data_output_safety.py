"""`stseg-data synth | preprocess | inspect` as a user runs them (subprocesses): issue #24.

A non-empty OUT is refused without a byte changed; synth --overwrite replaces only its own
output; an unwritable or full folder is one line, exit 1; outputs get the umask's mode; the
messages for non-finite points and unsafe or truncated .pt files say what was found.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stseg_data.testing import constrained_supported, error_line, file_fingerprint, run_cli

needs_tmpfs = pytest.mark.skipif(
    not constrained_supported(), reason="needs unshare -rm (private tmpfs mounts)"
)
TINY = ["--scenes", "1", "--spacing", "0.1"]


def _data(*args: object, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "stseg_data", *map(str, args)]
    if umask is None:
        return run_cli(argv)
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.umask(umask)
    )


def _real_scannet(root: Path) -> Path:
    """A stand-in for a user's ScanNet folder: real layout, no synth marker."""
    done = _data("synth", "scannet", root, "--scenes", "2", "--spacing", "0.1")
    assert done.returncode == 0, done.stderr
    (root / ".stseg-synth.json").unlink()
    (root / "notes.txt").write_text("my annotations\n")
    return root


@pytest.fixture(scope="module")
def synth_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("raw") / "scannet"
    done = _data("synth", "scannet", root, *TINY)
    assert done.returncode == 0, done.stderr
    return root


@pytest.mark.parametrize("overwrite", [False, True])
def test_synth_over_a_real_dataset_is_refused_and_nothing_changes(tmp_path, overwrite):
    real = _real_scannet(tmp_path / "scannet")
    before = file_fingerprint(real)
    result = _data("synth", "scannet", real, *TINY, *(["--overwrite"] if overwrite else []))
    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert line.startswith(f"Error: {real}: ")
    if overwrite:
        assert "only a folder written by stseg-data synth" in line and ".stseg-synth.json" in line
    else:
        assert "folder is not empty" in line
    assert file_fingerprint(real) == before
    assert (real / "scannetv2_train.txt").read_text() == "scene0001_00\n"


def test_synth_without_overwrite_keeps_its_own_output(tmp_path):
    out = tmp_path / "d"
    assert _data("synth", "scannet", out, *TINY).returncode == 0
    before = file_fingerprint(out)
    result = _data("synth", "s3dis", out, *TINY)
    assert result.returncode == 2
    assert "pass --overwrite" in error_line(result.stderr)
    assert file_fingerprint(out) == before


def test_synth_overwrite_replaces_its_own_output_cleanly(tmp_path):
    out = tmp_path / "d"
    assert _data("synth", "scannet", out, "--scenes", "3", "--spacing", "0.1").returncode == 0
    (out / "mine.txt").write_text("kept\n")  # not synth's: --overwrite leaves it
    result = _data("synth", "scannet", out, "--scenes", "1", "--spacing", "0.1", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "scans").iterdir()) == ["scene0000_00"]
    train = (out / "scannetv2_train.txt").read_text().split()
    val = (out / "scannetv2_val.txt").read_text().split()
    assert sorted(train + val) == ["scene0000_00", "scene0000_00"]  # one scene: train = val
    marker = json.loads((out / ".stseg-synth.json").read_text())
    assert marker["kind"] == "scannet" and marker["scenes"] == 1 and marker["complete"] is True
    assert (out / "mine.txt").read_text() == "kept\n"
    # another kind over it: no ScanNet file of the earlier run stays beside the S3DIS rooms
    result = _data("synth", "s3dis", out, *TINY, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        ".stseg-synth.json", "Area_1", "mine.txt", "s3dis_train.txt", "s3dis_val.txt",
    ]  # fmt: skip


def test_failed_synth_leaves_no_half_written_dataset(tmp_path, monkeypatch):
    from stseg_data import synth_scannet
    from stseg_data.synth import write_synthetic

    real_writer = synth_scannet.write_scannet_scene

    def fail_on_second(root, index, seed, spacing=0.035):
        if index == 1:
            raise OSError(28, "No space left on device")
        return real_writer(root, index, seed, spacing)

    monkeypatch.setattr(synth_scannet, "write_scannet_scene", fail_on_second)
    with pytest.raises(OSError):
        write_synthetic("scannet", tmp_path / "d", 3, spacing=0.1)
    assert not (tmp_path / "d").exists()


def test_preprocess_refuses_a_non_empty_out(tmp_path, synth_raw):
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "train.txt").write_text("something of mine\n")
    before = file_fingerprint(out)
    result = _data("preprocess", "scannet", synth_raw, out)
    assert result.returncode == 2
    assert error_line(result.stderr) == (
        f"Error: {out}: folder is not empty (pass --overwrite to write it again, or --resume {out})"
    )
    assert file_fingerprint(out) == before
    result = _data("preprocess", "scannet", synth_raw, "--resume", out)  # not its own folder
    assert result.returncode == 2 and "only a folder written by" in error_line(result.stderr)
    assert file_fingerprint(out) == before
    result = _data("preprocess", "scannet", synth_raw, out, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert (out / "train.txt").read_text() == "train/scene0000_00.ply\n"


def test_preprocess_resume_keeps_finished_scenes(tmp_path, synth_raw):
    out = tmp_path / "prepared"
    assert _data("preprocess", "scannet", synth_raw, out).returncode == 0
    scene = out / "train" / "scene0000_00.ply"
    mtime = scene.stat().st_mtime_ns
    result = _data("preprocess", "scannet", synth_raw, "--resume", out)
    assert result.returncode == 0 and "1 already done" in result.stdout
    assert scene.stat().st_mtime_ns == mtime
    result = _data("preprocess", "scannet", synth_raw, out, "--resume", out)  # OUT repeated
    assert result.returncode == 0 and "1 already done" in result.stdout
    result = _data("preprocess", "s3dis", synth_raw, "--resume", out)
    assert result.returncode == 2  # no S3DIS rooms in RAW: refused before OUT is looked at
    assert scene.stat().st_mtime_ns == mtime


def test_preprocess_resume_forms_refused_in_one_line(tmp_path, synth_raw):
    """The old bare flag, a RUN that differs from OUT, and neither OUT nor RUN: exit 2, one line."""
    out = tmp_path / "prepared"
    assert _data("preprocess", "scannet", synth_raw, out).returncode == 0
    before = file_fingerprint(out)
    bare = _data("preprocess", "scannet", synth_raw, out, "--resume")
    assert bare.returncode == 2 and bare.stderr.count("\n") == 1, bare.stderr
    assert error_line(bare.stderr).startswith(
        "Error: Invalid value for '--resume': give the folder of the run to continue: --resume RUN"
    )
    other = _data("preprocess", "scannet", synth_raw, out, "--resume", tmp_path / "elsewhere")
    assert other.returncode == 2 and other.stderr.count("\n") == 1, other.stderr
    assert "name different folders" in error_line(other.stderr)
    neither = _data("preprocess", "scannet", synth_raw)
    assert neither.returncode == 2 and "missing OUT" in error_line(neither.stderr)
    assert file_fingerprint(out) == before and not (tmp_path / "elsewhere").exists()


def test_preprocess_checks_raw_before_making_out(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    out = tmp_path / "out"
    result = _data("preprocess", "scannet", raw, out)
    assert result.returncode == 2 and str(raw) in error_line(result.stderr)
    assert not out.exists()


@needs_tmpfs
@pytest.mark.parametrize("kind", ["readonly", "full"])
def test_synth_into_an_unwritable_folder_is_one_line(tmp_path, kind):
    where = tmp_path / "mnt"
    argv = [sys.executable, "-m", "stseg_data", "synth", "scannet", str(where / "d"), *TINY]
    result = run_cli(argv, constrained=(where, kind))
    assert result.returncode == 1, result.stderr
    line = error_line(result.stderr)
    assert str(where) in line
    assert ("Read-only file system" if kind == "readonly" else "No space left") in line


@needs_tmpfs
@pytest.mark.parametrize("kind", ["readonly", "full"])
def test_preprocess_into_an_unwritable_folder_is_one_line(tmp_path, synth_raw, kind):
    where = tmp_path / "mnt"
    argv = [sys.executable, "-m", "stseg_data", "preprocess", "scannet", str(synth_raw),
            str(where / "out")]  # fmt: skip
    before = file_fingerprint(synth_raw)
    result = run_cli(argv, constrained=(where, kind))
    assert result.returncode == 1, result.stderr
    line = error_line(result.stderr)
    assert str(where) in line
    assert ("Read-only file system" if kind == "readonly" else "No space left") in line
    assert file_fingerprint(synth_raw) == before


def test_synth_and_preprocess_outputs_get_the_umask_mode(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    assert _data("synth", "s3dis", raw, *TINY, umask=0o022).returncode == 0
    assert _data("preprocess", "s3dis", raw, out, umask=0o022).returncode == 0
    files = [p for folder in (raw, out) for p in folder.rglob("*") if p.is_file()]
    assert len(files) > 5
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}


def test_non_finite_points_message_names_count_and_row(tmp_path):
    from stseg_data.ply import write_ply

    xyz = np.zeros((10, 3))
    path = tmp_path / "nan.ply"
    write_ply(path, xyz)
    data = bytearray(path.read_bytes())  # write_ply refuses NaN: patch two floats in the body
    body = data.index(b"end_header\n") + len(b"end_header\n")
    header = bytes(data[:body]).decode()
    width = 8 if "double x" in header else 4
    nan = np.array([np.nan], dtype="<f8" if width == 8 else "<f4").tobytes()
    for row in (3, 7):
        start = body + row * 3 * width
        data[start : start + width] = nan
    path.write_bytes(bytes(data))
    result = _data("inspect", path)
    assert result.returncode == 2
    line = error_line(result.stderr)
    assert "2 points with non-finite coordinates (NaN/inf), first at row 3 (of 10)" in line
    assert "drop" not in line


class _Gadget:
    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.parametrize("layout", ["zip", "legacy", "raw_protocol0", "raw_protocol4"])
def test_pickle_gadget_pt_file_is_refused_as_unsafe(tmp_path, layout):
    import torch

    sentinel = tmp_path / "SENTINEL"
    path = tmp_path / "scene_semantic_segment.pt"
    payload = {"x": _Gadget(str(sentinel))}
    if layout in ("zip", "legacy"):
        torch.save(payload, path, _use_new_zipfile_serialization=layout == "zip")
    else:
        path.write_bytes(pickle.dumps(payload, protocol=0 if layout == "raw_protocol0" else 4))
    result = _data("inspect", path)
    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert line.startswith(f"Error: {path}: refused: not a safe .pt data file")
    assert "system" in line  # the pickled global is named (posix.system / os.system)
    assert "weights_only" not in result.stderr and "corrupt" not in line
    assert not sentinel.exists()


def test_truncated_pt_file_is_corrupt_not_unsafe(tmp_path):
    import torch

    path = tmp_path / "scene.pt"
    torch.save(torch.zeros(50, 9), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:300])
    result = _data("inspect", path)
    assert result.returncode == 2
    line = error_line(result.stderr)
    assert line.startswith(f"Error: {path}: corrupt or truncated .pt data file")
    assert "refused" not in line and "weights_only" not in result.stderr
