"""Nothing a user owns is overwritten or left half-done (issue #24), through `stseg-train` as typed.

- two `--resume RUN` at once: the second is refused at once, one line naming the first's pid and
  host, and changes no byte of the run; the lock a killed run leaves is taken over with a warning;
- `eval --split S` writes eval_<S>.json (the run's metrics.json untouched), refuses an existing
  one unless --overwrite, and finds a read-only --out before evaluating; export-benchmark refuses
  a non-empty or read-only --out before running the network;
- a refused training (bad data, bad labels, a bad --set) leaves no run folder, so the corrected
  retry runs; a refused --resume changes no byte;
- a read-only or full run folder is refused before training (exit 1, one line); a disk that fills
  up mid-training ends as one line naming the checkpoint, the previous checkpoint intact;
- files are written with the umask's mode: 0644 under 022, 0640 under 027, checkpoints included.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stseg_data.testing import constrained_supported, run_cli
from stseg_train.crashtest import (
    checkpoint_path,
    child_env,
    error_line,
    file_fingerprint,
    hanging,
    run_command,
    run_until_hang,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # child processes: CPU-bound
TOOL = str(Path(sys.executable).parent / "stseg-train")
DATA_TOOL = str(Path(sys.executable).parent / "stseg-data")
# the registry's smallest network at coarse voxels: ~0.5 s per step, 64 MB checkpoints
FAST = ["--model", "Res16UNet14A", "--voxel-size", "0.4", "--batch-size", "1",
        "--set", "progress=false", "--set", "tensorboard=false", "--set", "threads=1"]  # fmt: skip
needs_mounts = pytest.mark.skipif(
    not constrained_supported(), reason="no private mounts here (unshare -rm)"
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 tiny rooms (scene 0 validation, 1-2 training), preprocessed."""
    root = tmp_path_factory.mktemp("data")
    done = run_command([DATA_TOOL, "synth", "scannet", str(root / "raw"), "--scenes", "3",
                        "--spacing", "0.1"])  # fmt: skip
    assert done.returncode == 0, done.stdout
    done = run_command([DATA_TOOL, "preprocess", "scannet", str(root / "raw"), str(root / "p")])
    assert done.returncode == 0, done.stdout
    return root / "p"


def _train_argv(data: Path, out: Path, *args: str) -> list[str]:
    return [TOOL, "scannet", "--data", str(data), "--out", str(out), *FAST, *args]


def _train(
    data: Path, out: Path, *args: str, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    argv = _train_argv(data, out, *args)
    if umask is not None:  # the way a user's shell sets it: before the command starts
        argv = ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *argv]
    return run_command(argv)


@pytest.fixture(scope="module")
def trained(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-iteration run (validation, best, final, metrics.json), written under umask 022."""
    run = tmp_path_factory.mktemp("runs") / "run"
    done = _train(prepared, run, "--max-iter", "1", umask=0o022)
    assert done.returncode == 0, done.stdout
    return run


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode)
            for p in folder.rglob("*") if p.is_file()}  # fmt: skip


# ---- the run lock --------------------------------------------------------------------------------
def test_second_resume_is_refused_while_the_first_trains(prepared: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # A run killed right after checkpoint 2: its lock file names a pid that no longer exists.
    run_until_hang(_train_argv(prepared, run, "--max-iter", "3", "--set", "save_freq=2",
                               "--set", "val_freq=100"), "hang:0:2")  # fmt: skip
    stale = json.loads((run / ".lock").read_text())
    resume = [TOOL, "scannet", "--resume", str(run)]
    with hanging(resume, "hang:0:3") as first:
        # the dead process's lock was taken over with a warning, and now names the live one
        assert f"taking over a stale lock of pid {stale['pid']}" in first.output, first.output
        assert json.loads((run / ".lock").read_text())["pid"] == first.pid
        before = file_fingerprint(run)
        tic = time.perf_counter()
        second = run_command(resume)
        seconds = time.perf_counter() - tic
        assert second.returncode == 2, second.stdout
        line = error_line(second.stdout)
        assert f"pid {first.pid} on host {socket.gethostname()}" in line, line
        assert "another training runs in this folder" in line, line
        assert "resumed from" not in second.stdout  # refused before any training step
        assert file_fingerprint(run) == before
        assert seconds < 60, seconds
    # The first was SIGKILLed: its lock is stale; the next --resume takes it over and finishes.
    done = run_command(resume)
    assert done.returncode == 0, done.stdout
    assert f"taking over a stale lock of pid {first.pid}" in done.stdout, done.stdout
    assert (run / "checkpoints" / "final.pth").is_file()
    assert not (run / ".lock").exists()  # released (and removed) at the end


# ---- eval and export-benchmark -------------------------------------------------------------------
def test_eval_writes_eval_split_json_and_never_metrics_json(trained: Path, prepared: Path) -> None:
    metrics = file_fingerprint(trained)["metrics.json"]
    argv = [TOOL, "eval", str(trained), "--data", str(prepared), "--split", "train"]
    done = run_command(argv)
    assert done.returncode == 0, done.stdout
    written = json.loads((trained / "eval_train.json").read_text())
    assert written["split"] == "train" and written["scenes"] == 2
    assert file_fingerprint(trained)["metrics.json"] == metrics
    # again: refused, nothing changed; with --overwrite: replaced
    before = file_fingerprint(trained)
    again = run_command(argv)
    assert again.returncode == 2, again.stdout
    line = error_line(again.stdout)
    assert "eval_train.json: already exists" in line and "--overwrite" in line, line
    assert file_fingerprint(trained) == before
    done = run_command([*argv, "--overwrite"])
    assert done.returncode == 0, done.stdout
    after = file_fingerprint(trained)
    assert after["eval_train.json"] != before["eval_train.json"]
    assert after["metrics.json"] == metrics
    # --out FOLDER: eval_<split>.json in it
    out = trained.parent / "evals"
    done = run_command([TOOL, "eval", str(trained), "--data", str(prepared), "--out", str(out)])
    assert done.returncode == 0, done.stdout
    assert json.loads((out / "eval_val.json").read_text())["split"] == "val"


@pytest.fixture(scope="module")
def broken_split(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the data whose `broken` split names a scene that cannot be read: any command
    that starts evaluating it fails on that scene, so a refusal naming the output came first."""
    root = tmp_path_factory.mktemp("broken") / "data"
    shutil.copytree(prepared, root)
    (root / "train" / "scene9999_00.ply").write_bytes(b"ply\nnot a real header\n")
    (root / "broken.txt").write_text("train/scene9999_00.ply\n")
    return root


@needs_mounts
def test_eval_into_a_read_only_folder_fails_before_evaluating(
    trained: Path, broken_split: Path, tmp_path: Path
) -> None:
    readonly = tmp_path / "readonly"
    argv = [TOOL, "eval", str(trained), "--data", str(broken_split), "--split", "broken",
            "--out", str(readonly)]  # fmt: skip
    done = run_cli(argv, env=child_env(), constrained=(readonly, "readonly"))
    assert done.returncode == 1, done.stdout + done.stderr
    line = error_line(done.stderr)
    assert line.startswith(f"Error: {readonly}: cannot write there") and "EROFS" in line, line
    # without the mount, the same command reaches the evaluation (and the broken scene)
    reached = run_command(argv)
    assert reached.returncode == 2 and "scene9999_00" in error_line(reached.stdout)
    assert not list(readonly.iterdir())


def test_export_benchmark_refuses_a_non_empty_out_before_the_network_runs(
    trained: Path, broken_split: Path, tmp_path: Path
) -> None:
    out = tmp_path / "submission"
    out.mkdir()
    (out / "scene0000_00.txt").write_text("1\n")
    before = file_fingerprint(out)
    argv = [TOOL, "export-benchmark", str(trained), "--data", str(broken_split),
            "--split", "broken", "--out", str(out)]  # fmt: skip
    done = run_command(argv)
    assert done.returncode == 2, done.stdout
    line = error_line(done.stdout)
    assert f"{out}: folder is not empty" in line and "--overwrite" in line, line
    assert file_fingerprint(out) == before
    if constrained_supported():
        readonly = tmp_path / "readonly"
        argv[-1] = str(readonly)
        done = run_cli(argv, env=child_env(), constrained=(readonly, "readonly"))
        assert done.returncode == 1, done.stdout + done.stderr
        assert "cannot write there" in error_line(done.stderr)


# ---- refused trainings leave nothing behind ------------------------------------------------------
@pytest.fixture(scope="module")
def bad_labels(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the data whose training rooms hold label 77 (outside ScanNet's 20 classes)."""
    from stseg_data.ply import read_ply
    from stseg_data.ply_write import write_ply

    root = tmp_path_factory.mktemp("bad_labels") / "data"
    shutil.copytree(prepared, root)
    for scene in (root / "train").glob("*.ply"):
        cloud = read_ply(scene)
        labels = np.full(len(cloud.xyz), 77, dtype=np.uint16)
        write_ply(scene, cloud.xyz, cloud.rgb, extra={"label": labels})
    return root


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("missing data", "dataset folder does not exist"),
        ("bad labels", "outside [0, 20)"),
        ("num_workers=-1", "config: num_workers must be >= 0"),
        ("step_size=0", "config: step_size and exp_step_size must be >= 1"),
        ("unknown model", "unknown model 'Res16UNet999'"),
    ],
)
def test_a_refused_training_leaves_no_run_folder(
    problem: str, expected: str, prepared: Path, bad_labels: Path, tmp_path: Path
) -> None:
    data, extra = prepared, ["--max-iter", "1"]
    if problem == "missing data":
        data = tmp_path / "no_such_data"
    elif problem == "bad labels":
        data = bad_labels
    elif problem == "unknown model":
        extra += ["--model", "Res16UNet999"]
    else:
        extra += ["--set", problem]
    run = tmp_path / "runs" / "run"
    done = _train(data, run, *extra)
    assert done.returncode == 2, done.stdout
    assert expected in error_line(done.stdout)
    assert "Traceback" not in done.stdout
    assert not (tmp_path / "runs").exists()  # nor the parent the run would have made


def test_the_corrected_retry_runs_with_umask_027_modes(prepared: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    refused = _train(prepared, run, "--max-iter", "1", "--set", "num_workers=-1")
    assert refused.returncode == 2 and not run.exists()
    done = _train(prepared, run, "--max-iter", "1", umask=0o027)
    assert done.returncode == 0, done.stdout
    modes = _modes(run)
    assert "checkpoints/final.pth" in modes and "config.json" in modes, modes
    assert set(modes.values()) == {0o640}, modes
    assert stat.S_IMODE(run.stat().st_mode) == 0o750


def test_files_of_a_run_get_mode_0644_under_umask_022(trained: Path) -> None:
    modes = {name: mode for name, mode in _modes(trained).items() if "eval_" not in name}
    assert {"checkpoints/final.pth", "checkpoints/final.pth.sha256", "checkpoints/best.pth",
            "config.json", "metrics.json"} <= set(modes), modes  # fmt: skip
    assert set(modes.values()) == {0o644}, modes


def test_a_refused_resume_changes_no_byte(trained: Path) -> None:
    before = file_fingerprint(trained)
    for args in (["--set", "num_workers=-1"], ["--set", "log_freq=0"], ["--model", "Res16UNet18"]):
        done = run_command([TOOL, "scannet", "--resume", str(trained), *args])
        assert done.returncode == 2, done.stdout
        error_line(done.stdout)
        assert file_fingerprint(trained) == before, args


# ---- read-only folder, full disk -----------------------------------------------------------------
@needs_mounts
@pytest.mark.parametrize(("kind", "expected"), [("readonly", "cannot write there"),
                                                ("full", "not enough space for a checkpoint")])  # fmt: skip
def test_training_into_a_read_only_or_full_folder_fails_before_training(
    kind: str, expected: str, prepared: Path, tmp_path: Path
) -> None:
    folder = tmp_path / kind
    run = folder / "run"
    argv = [TOOL, "scannet", "--data", str(prepared), "--out", str(run), *FAST, "--max-iter", "1"]
    done = run_cli(argv, env=child_env(), constrained=(folder, kind))  # type: ignore[arg-type]
    assert done.returncode == 1, done.stdout + done.stderr
    line = error_line(done.stderr)
    assert line.startswith(f"Error: {run}: {expected}"), line
    assert "iter 1" not in done.stderr  # no step was trained
    assert not list(folder.iterdir())


VERIFY = """
import sys
from pathlib import Path
from stseg_train.checkpoint import load_checkpoint
run = Path(sys.argv[1])
print("verified iteration", load_checkpoint(run / "checkpoints" / "iter_00000002.pth")["iteration"])
print("left", sorted(p.name for p in (run / "checkpoints").iterdir()))
"""


@needs_mounts
def test_a_disk_filling_up_mid_training_ends_in_one_line(prepared: Path, tmp_path: Path) -> None:
    # A 150 MiB filesystem: the up-front check (one ~110 MiB checkpoint) passes; checkpoints of
    # iterations 1 and 2 (64 MB each) fit, iteration 3's cannot (validation, and its best.pth,
    # only at iteration 4).
    folder = tmp_path / "small"
    folder.mkdir()
    run = folder / "run"
    train = [TOOL, "scannet", "--data", str(prepared), "--out", str(run), *FAST,
             "--max-iter", "4", "--set", "save_freq=1", "--set", "val_freq=100",
             "--set", "keep_last=3"]  # fmt: skip
    script = (
        'mount -t tmpfs -o size=150m tmpfs "$1" && shift && "$@"; echo "exit=$?"; '
        f'{sys.executable} -c "$VERIFY" "$RUN"'
    )
    env = child_env({"VERIFY": VERIFY, "RUN": str(run)})
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(folder), *train],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    output = done.stdout + done.stderr
    assert "exit=1" in done.stdout, output
    line = error_line(done.stderr)
    assert line.startswith("Error: could not save the checkpoint of iteration 3"), line
    assert str(checkpoint_path(run, 3)) in line and "errno 28" in line, line
    assert "newest intact checkpoint is iter_00000002.pth" in line, line
    assert "verified iteration 2" in done.stdout, output  # its sha256 sidecar matches
    left = done.stdout.split("left ", 1)[1]
    assert "iter_00000003" not in left and ".tmp" not in left, left


# ---- torchrun: only rank 0 locks -----------------------------------------------------------------
def test_only_rank_zero_of_a_launched_group_takes_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stseg_train.config import TrainConfig
    from stseg_train.errors import TrainInputError
    from stseg_train.runfolder import open_run, prepare_run_dir
    from stseg_train.runlock import RunLock

    config = TrainConfig(out=str(tmp_path / "run"))
    prepare_run_dir(config, resume=False)
    with RunLock(tmp_path / "run"):  # rank 0 of a torchrun group, training
        before = file_fingerprint(tmp_path / "run")
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "1")
        with open_run(config, resume=True):  # rank 1: not refused, writes nothing
            assert file_fingerprint(tmp_path / "run") == before
        monkeypatch.setenv("RANK", "0")
        refused = pytest.raises(TrainInputError, match=f"pid {os.getpid()} on host")
        with refused, open_run(config, resume=True):
            pass
        assert file_fingerprint(tmp_path / "run") == before


# ---- out of memory -------------------------------------------------------------------------------
def test_out_of_memory_in_training_ends_in_one_line(prepared: Path, tmp_path: Path) -> None:
    # An allocator failure in the forward pass (injected): the step is skipped in lockstep; past
    # the allowed skips per epoch the run stops with one line, never a traceback.
    run = tmp_path / "run"
    argv = _train_argv(prepared, run, "--max-iter", "2", "--set", "max_oom_skips_per_epoch=0")
    done = run_command(argv, env={"STSEG_TRAIN_FAULT": "oom:0:0"})
    assert done.returncode == 1, done.stdout
    line = error_line(done.stdout)
    assert "out-of-memory skips this epoch" in line and "--batch-size" in line, line
    assert "out of memory on some rank, batch skipped" in done.stdout
