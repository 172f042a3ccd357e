"""`ssen-instance train` follows stseg-train's run-folder rules (`stseg_train.runfolder.open_run`):

- a second `--resume RUN` while the first trains is refused at once (exit 2, one line naming the
  holder's pid and host) and changes no byte of the run; once the first is killed its stale lock
  is taken over with a warning;
- a refused new run (a bad setting, a semantic checkpoint that is not one) leaves no folder, so
  the corrected command is not refused with "a run already exists there";
- a read-only or full --out is refused before training (exit 1, one line).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from ssen_instance.toy import write_toy_scenes
from stseg_data.testing import constrained_supported, run_cli
from stseg_train.crashtest import child_env, error_line, file_fingerprint, hanging, run_command

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # child processes: CPU-bound
TOOL = str(Path(sys.executable).parent / "ssen-instance")
OPTIONS = ["--model", "Res16UNet14A", "--voxel-size", "0.05", "--batch-size", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two toy rooms as SSEN scene files."""
    return write_toy_scenes(tmp_path_factory.mktemp("ssen_data"), 2)


def _argv(data: Path, run: Path, *args: str) -> list[str]:
    return [TOOL, "train", "--data", str(data), "--out", str(run), *OPTIONS, *args]


def test_second_resume_is_refused_while_the_first_trains(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    resume = [TOOL, "train", "--resume", str(run)]
    with hanging(_argv(data, run, "--max-iter", "2", "--save-freq", "1"), "hang:0:1") as first:
        before = file_fingerprint(run)
        second = run_command(resume)
        assert second.returncode == 2, second.stdout
        line = error_line(second.stdout)
        assert f"pid {first.pid} on host {socket.gethostname()}" in line, line
        assert file_fingerprint(run) == before
    done = run_command(resume)
    assert done.returncode == 0, done.stdout
    assert f"taking over a stale lock of pid {first.pid}" in done.stdout, done.stdout
    assert (run / "instance.pt").is_file() and not (run / ".lock").exists()


def test_a_refused_new_run_leaves_no_folder(data: Path, tmp_path: Path) -> None:
    not_a_checkpoint = tmp_path / "semantic.pth"
    not_a_checkpoint.write_bytes(b"not a checkpoint")
    run = tmp_path / "runs" / "run"
    for args, expected in (
        (["--max-iter", "0"], "config: max_iter must be >= 1"),
        (["--semantic-weights", str(not_a_checkpoint)], str(not_a_checkpoint)),
    ):
        done = run_command(_argv(data, run, "--max-iter", "1", *args))
        assert done.returncode == 2, done.stdout
        assert expected in error_line(done.stdout), done.stdout
        assert not (tmp_path / "runs").exists(), args
    done = run_command(_argv(data, run, "--max-iter", "1"))
    assert done.returncode == 0, done.stdout


@pytest.mark.skipif(not constrained_supported(), reason="no private mounts (unshare -rm)")
@pytest.mark.parametrize(("kind", "expected"), [("readonly", "cannot write there"),
                                                ("full", "not enough space for a checkpoint")])  # fmt: skip
def test_a_read_only_or_full_out_is_refused_before_training(
    kind: str, expected: str, data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / kind
    run = folder / "run"
    done = run_cli(_argv(data, run, "--max-iter", "1"), env=child_env(),
                   constrained=(folder, kind))  # type: ignore[arg-type]  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert error_line(done.stderr).startswith(f"Error: {run}: {expected}")
    assert not list(folder.iterdir())
