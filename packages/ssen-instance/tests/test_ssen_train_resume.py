"""Kill and resume of `ssen-instance train` through the command line, as users type it.

Tiny toy rooms written as SSEN scene files, Res16UNet14A at 5 cm, one CPU thread, 4 iterations,
checkpoints every 2 (stseg-train's fault hooks and `stseg_train.crashtest` helpers):

- a straight run 0 -> 4 (in the background, beside the interrupted one);
- the same command killed with SIGKILL right after checkpoint 2 is on disk, resumed with
  `--resume RUN` alone and killed halfway through writing checkpoint 4 (checkpoint 2 survives and is
  what the next resume uses), resumed under a file-size limit so that checkpoint 4 cannot be written
  (a one-line error, exit 1, checkpoint 2 intact), then resumed to the end: the final checkpoint
  (weights, norm statistics, optimizer, scheduler, RNG states, data position, loss history, metrics)
  and the instance checkpoint are bitwise equal to the straight run's;
- a second run into the finished run's `--out` is refused (exit 2) and changes no file;
- `--resume` of a folder that is not a run is refused (exit 2, one line).
"""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from ssen_instance.toy import write_toy_scenes
from stseg_train.checkpoint import load_checkpoint
from stseg_train.crashtest import (
    checkpoint_path,
    error_line,
    file_fingerprint,
    load,
    run_command,
    run_until_hang,
    state_differences,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # child processes: CPU-bound
N, K = 4, 2  # iterations in all; the checkpoint the first kill follows (checkpoints every K)
TOOL = str(Path(sys.executable).parent / "ssen-instance")
# The registry's smallest network; 3 m rooms at 5 cm keep the deepest level above one voxel.
OPTIONS = ["--model", "Res16UNet14A", "--voxel-size", "0.05", "--batch-size", "1",
           "--max-iter", str(N), "--save-freq", str(K)]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three toy rooms (~2,800 points each) as SSEN scene files."""
    return write_toy_scenes(tmp_path_factory.mktemp("ssen_data"), 3)


def _argv(data: Path, run: Path) -> list[str]:
    return [TOOL, "train", "--data", str(data), "--out", str(run), *OPTIONS]


def _resume_argv(run: Path) -> list[str]:
    # as a user would type it: the run folder, nothing else (the run's config has the rest)
    return [TOOL, "train", "--resume", str(run)]


@pytest.fixture(scope="module")
def straight(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Future:
    """The uninterrupted run, started in the background (beside the interrupted chain)."""
    run = tmp_path_factory.mktemp("ssen_straight") / "run"
    pool = ThreadPoolExecutor(1)
    future = pool.submit(run_command, _argv(data, run))
    pool.shutdown(wait=False)
    future.run_dir = run  # type: ignore[attr-defined]
    return future


def test_kill_and_resume_equals_the_straight_run(
    data: Path, straight: Future, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    first, second = checkpoint_path(run, K), checkpoint_path(run, 2 * K)
    # 1. SIGKILL once checkpoint K is on disk (the process hangs there until killed).
    run_until_hang(_argv(data, run), f"hang:0:{K}")
    assert load_checkpoint(first)["iteration"] == K  # verified against its sidecar
    assert not second.exists() and not (run / "checkpoints" / "final.pth").exists()
    assert not (run / "instance.pt").exists()
    before = file_fingerprint(run / "checkpoints")
    assert sorted(before) == [first.name, first.name + ".sha256"]
    # 2. Resume; SIGKILL halfway through writing checkpoint 2K: checkpoint K survives untouched.
    output = run_until_hang(_resume_argv(run), f"hang-write:0:{2 * K}")
    assert f"resumed from {first} at iteration {K}" in output
    partial = list((run / "checkpoints").glob(f".{second.name}.*.tmp"))
    assert partial and 0 < partial[0].stat().st_size < first.stat().st_size, partial
    assert not second.exists()
    kept = {
        k: v for k, v in file_fingerprint(run / "checkpoints").items() if not k.endswith(".tmp")
    }
    assert kept == before
    # 3. Resume with files limited to half a checkpoint (a full disk): one line, exit 1, K intact;
    #    the partial file of step 2 is removed and checkpoint K is what the resume used.
    done = run_command(_resume_argv(run), file_size_limit=first.stat().st_size // 2)
    assert done.returncode == 1, done.stdout
    line = error_line(done.stdout)
    assert line.startswith(f"Error: could not save the checkpoint of iteration {2 * K}: "), line
    assert "errno 27" in line and f"newest intact checkpoint is {first.name}" in line, line
    assert f"resumed from {first} at iteration {K}" in done.stdout
    assert not second.exists() and not list((run / "checkpoints").glob(".*.tmp"))
    assert file_fingerprint(run / "checkpoints") == before
    # 4. Resume to the end: bitwise the straight run.
    done = run_command(_resume_argv(run))
    assert done.returncode == 0, done.stdout
    assert f"resumed from {first} at iteration {K}" in done.stdout
    assert f"instance checkpoint: {run}/instance.pt" in done.stdout
    reference = straight.result()
    assert reference.returncode == 0, reference.stdout
    ref_run: Path = straight.run_dir  # type: ignore[attr-defined]
    for name in ("final.pth", second.name):
        differences = state_differences(
            load(ref_run / "checkpoints" / name), load(run / "checkpoints" / name)
        )
        assert differences == [], f"{name}: {differences}"
    differences = state_differences(load(ref_run / "instance.pt"), load(run / "instance.pt"))
    assert differences == [], f"instance.pt: {differences}"
    final = load(run / "checkpoints" / "final.pth")
    assert final["iteration"] == N and [i for i, _ in final["trainer"]["recent_losses"]] == [
        1,
        2,
        3,
        4,
    ]
    # the state compared is a trained one: the weights moved away from the first checkpoint's
    assert state_differences(load(first), final)


def test_second_run_into_an_existing_out_is_refused(data: Path, straight: Future) -> None:
    assert straight.result().returncode == 0
    run: Path = straight.run_dir  # type: ignore[attr-defined]
    before = file_fingerprint(run)
    done = run_command(_argv(data, run))
    assert done.returncode == 2, done.stdout
    assert "a run already exists there; pass --resume" in error_line(done.stdout)
    assert file_fingerprint(run) == before


def test_resume_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "not_a_run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "notes.txt").write_text("hello")
    for target in (folder, tmp_path / "missing"):
        done = run_command(_resume_argv(target))
        assert done.returncode == 2, done.stdout
        assert f"--resume {target}: not a training run (no config.json)" in error_line(done.stdout)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoints", "notes.txt"]
    assert (folder / "notes.txt").read_text() == "hello"
