"""`stseg-models predict` as a user runs it (subprocesses): issue #24.

Out of memory is one line naming the size (exit 1, no output; per file with --keep-going); a
read-only or full --out is one line naming the path; an unsafe checkpoint is refused naming the
pickled global (never "corrupt", never torch's weights_only=False advice); a truncated one is
"corrupt or truncated"; outputs get the umask's mode; a NaN cloud names the count and first row.
"""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stseg_data.ply import write_ply
from stseg_data.testing import constrained_supported, error_line, run_cli
from stseg_models.checkpoint import dataset_preset, save_checkpoint
from stseg_models.zoo import build_model

needs_tmpfs = pytest.mark.skipif(
    not constrained_supported(), reason="needs unshare -rm (private tmpfs mounts)"
)
CLI = [sys.executable, "-m", "stseg_models"]

# Runs the CLI with an address-space limit a few hundred MiB above what the process maps once
# torch and the CLI are imported: enough to load the model, not enough for a 2M-point scene.
LIMITED = """
import resource, sys
import torch  # noqa: F401
from stseg_models.cli import main

def mapped_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

limit = mapped_bytes() + int(sys.argv[1]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.argv = ["stseg-models", *sys.argv[2:]]
main()
"""
MARGIN_MIB = 300


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "scannet.pt"
    save_checkpoint(path, build_model("Res16UNet14A", 3, 20), dataset_preset("scannet"))
    return path


def _scene(path: Path, n: int = 300, extent: float = 1.0) -> Path:
    rng = np.random.default_rng(0)
    write_ply(path, rng.uniform(0, extent, size=(n, 3)), rng.uniform(0, 1, size=(n, 3)))
    return path


def _predict(*args: object, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*CLI, "predict", *map(str, args), "--threads", "1"]
    if umask is None:
        return run_cli(argv)
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.umask(umask)
    )


def _limited_predict(tmp_path: Path, *args: object) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "limited.py"
    script.write_text(LIMITED)
    argv = [sys.executable, str(script), str(MARGIN_MIB), "predict", *map(str, args)]
    return run_cli([*argv, "--threads", "1"])


@pytest.fixture(scope="module")
def huge_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 2M points spread over 500 m: every point its own 2 cm voxel, far beyond the limit above
    return _scene(tmp_path_factory.mktemp("huge") / "a_huge.ply", n=2_000_000, extent=500.0)


def test_out_of_memory_is_one_line_naming_the_size(tmp_path, weights, huge_scene):
    out = tmp_path / "out"
    result = _limited_predict(tmp_path, huge_scene, "-w", weights, "--out", out, "--rotations", 4)
    assert result.returncode == 1, result.stderr
    line = error_line(result.stderr)
    assert line.startswith(f"Error: {huge_scene}: 2000000 points, 4 rotation(s) on cpu: ")
    assert "out of memory while allocating" in line and "MiB" in line
    assert not out.exists()


def test_out_of_memory_with_keep_going_is_recorded_per_file(tmp_path, weights, huge_scene):
    inputs = tmp_path / "in"
    inputs.mkdir()
    os.link(huge_scene, inputs / huge_scene.name)
    _scene(inputs / "b_small.ply")
    out = tmp_path / "out"
    result = _limited_predict(
        tmp_path, inputs, "-w", weights, "--out", out, "--rotations", 4, "--keep-going"
    )
    assert result.returncode == 1, result.stderr
    assert error_line(result.stderr) == "Error: predicted 1 of 2 scenes", result.stderr
    assert f"failed: {inputs / huge_scene.name}: 2000000 points" in result.stderr
    assert "out of memory while allocating" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["b_small_pred.ply"]


@needs_tmpfs
@pytest.mark.parametrize("kind", ["readonly", "full"])
def test_unwritable_out_is_one_line_naming_the_path(tmp_path, weights, kind):
    # 5000 points: a coloured PLY of ~130 KiB, more than the "full" tmpfs holds
    src = _scene(tmp_path / "room.ply", n=5000)
    where = tmp_path / "mnt"
    argv = [*CLI, "predict", str(src), "-w", str(weights), "--out", str(where / "o"),
            "--threads", "1"]  # fmt: skip
    result = run_cli(argv, constrained=(where, kind))
    assert result.returncode == 1, result.stderr
    line = error_line(result.stderr)
    assert str(where) in line
    assert ("Read-only file system" if kind == "readonly" else "No space left") in line


def test_unusable_out_is_refused_before_the_model_loads(tmp_path):
    # the checkpoint does not exist: a check after loading would name it instead
    src = _scene(tmp_path / "room.ply")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _predict(src, "-w", tmp_path / "absent.pt", "--out", blocker / "o")
    assert result.returncode == 2
    assert "is a file, not a folder" in error_line(result.stderr)


class _Gadget:
    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.parametrize("layout", ["zip", "legacy", "raw_protocol0", "raw_protocol5"])
def test_pickle_gadget_checkpoint_is_refused_as_unsafe(tmp_path, layout):
    sentinel = tmp_path / "SENTINEL"
    evil = tmp_path / "evil.pth"
    payload = {"state_dict": {"w": torch.zeros(2)}, "cfg": _Gadget(str(sentinel))}
    if layout in ("zip", "legacy"):
        torch.save(payload, evil, _use_new_zipfile_serialization=layout == "zip")
    else:
        evil.write_bytes(pickle.dumps(payload, protocol=0 if layout == "raw_protocol0" else 5))
    out = tmp_path / "o"
    result = _predict(_scene(tmp_path / "a.ply"), "-w", evil, "--out", out)
    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert line.startswith(f"Error: {evil}: refused: not a safe checkpoint")
    assert "system" in line  # the pickled global (posix.system) is named
    assert "corrupt" not in line and "weights_only" not in result.stderr
    assert not sentinel.exists() and not out.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_checkpoint_is_corrupt_not_unsafe(tmp_path, weights, legacy):
    cut = tmp_path / "cut.pt"
    if legacy:
        payload = torch.load(weights, weights_only=True)
        torch.save(payload, cut, _use_new_zipfile_serialization=False)
        data = cut.read_bytes()
    else:
        data = weights.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    result = _predict(_scene(tmp_path / "a.ply"), "-w", cut, "--out", tmp_path / "o")
    assert result.returncode == 2
    line = error_line(result.stderr)
    assert line.startswith(f"Error: {cut}: corrupt")
    assert "refused" not in line and "weights_only" not in result.stderr


def test_outputs_get_the_umask_mode(tmp_path, weights):
    out = tmp_path / "o"
    result = _predict(_scene(tmp_path / "a.ply"), "-w", weights, "--out", out, "--format", "txt",
                      umask=0o022)  # fmt: skip
    assert result.returncode == 0, result.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == {"a_pred.ply": 0o644, "a.txt": 0o644}


def test_non_finite_input_names_count_and_row_and_no_missing_flag(tmp_path, weights):
    path = tmp_path / "nan.ply"
    rows = ["0 0 0 10 20 30"] * 6
    rows[2] = rows[4] = "nan 0 0 10 20 30"
    header = ["ply", "format ascii 1.0", "element vertex 6", "property float x",
              "property float y", "property float z", "property uchar red",
              "property uchar green", "property uchar blue", "end_header"]  # fmt: skip
    path.write_text("\n".join([*header, *rows]) + "\n")
    result = _predict(path, "-w", weights, "--out", tmp_path / "o")
    assert result.returncode == 2
    line = error_line(result.stderr)
    assert "2 points with non-finite coordinates (NaN/inf), first at row 2 (of 6)" in line
    assert "drop" not in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "error, size",
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0)"), "2.00 GiB"),
        (RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1048576 bytes"),
         "1.0 MiB"),
        (MemoryError("Unable to allocate 45.8 MiB for an array"), "45.8 MiB"),
    ],
)  # fmt: skip
def test_every_allocator_failure_is_one_typed_error(weights, monkeypatch, error, size):
    # the CUDA path without a GPU: the same conversion catches every allocator's failure
    from stseg_models.errors import PredictRuntimeError
    from stseg_models.inference import Segmenter

    seg = Segmenter.from_checkpoint(weights)

    def fail(*_args):
        raise error

    monkeypatch.setattr(seg, "_voxel_logits", fail)
    xyz = np.random.default_rng(0).uniform(0, 1, size=(50, 3))
    with pytest.raises(PredictRuntimeError) as info:
        seg.predict(xyz, np.full((50, 3), 0.5), rotations=4)
    assert str(info.value).startswith("50 points, 4 rotation(s) on cpu: out of memory")
    assert f"while allocating {size}" in str(info.value)


def test_other_runtime_errors_are_not_called_out_of_memory(weights, monkeypatch):
    from stseg_models.inference import Segmenter

    seg = Segmenter.from_checkpoint(weights)
    bug = RuntimeError("shape mismatch")
    monkeypatch.setattr(seg, "_voxel_logits", lambda *_a: (_ for _ in ()).throw(bug))
    with pytest.raises(RuntimeError) as info:
        seg.predict(np.zeros((5, 3)), np.zeros((5, 3)))
    assert info.value is bug


def test_a_recorded_failure_keeps_no_frames_of_the_failed_scene():
    # --keep-going keeps each failure's message; the scene's arrays must be freed with its frames
    import gc
    import weakref

    from stseg_data.errors import StsegError
    from stseg_models.predict_files import _without_frames

    class Scene:
        pass

    def fail(scene: Scene) -> None:
        try:
            raise MemoryError("allocator")
        except MemoryError as cause:
            raise StsegError("out of memory") from cause

    scene = Scene()
    alive = weakref.ref(scene)
    try:
        fail(scene)
    except StsegError as error:
        kept = _without_frames(error)
    del scene
    gc.collect()
    assert alive() is None
    assert str(kept) == "out of memory" and kept.__traceback__ is None
    assert kept.__cause__ is not None and kept.__cause__.__traceback__ is None
