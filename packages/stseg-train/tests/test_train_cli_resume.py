"""Kill and resume through the command line, as users type it, for every `stseg-train` dataset.

For each of `synthetic`, `scannet`, `s3dis` and `synthia4d` (4D), on tiny synthetic data made with
`stseg-data synth` / `preprocess`, one CPU thread, 4 iterations, checkpoints every 2:

- a straight run 0 -> 4 (in the background, beside the interrupted one);
- the same command killed with SIGKILL right after checkpoint 2 is on disk, resumed and killed
  halfway through writing checkpoint 4 (checkpoint 2 survives), resumed under a file-size limit so
  that checkpoint 4 cannot be written (a one-line error, exit 1, checkpoint 2 intact), then resumed
  to the end: the final checkpoint (weights, norm statistics, optimizer, scheduler, RNG states,
  data position, loss history, metrics) and metrics.json are bitwise equal to the straight run's;
- a second run into the finished run's `--out` is refused (exit 2) and changes no file;
- `--resume` of a folder that is not a run is refused (exit 2, one line).
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # child processes: CPU-bound
N, K = 4, 2  # iterations in all; the checkpoint the first kill follows (checkpoints every K)
BIN = Path(sys.executable).parent
COMMON = ["--max-iter", str(N), "--batch-size", "1",
          "--set", "progress=false", "--set", "tensorboard=false", "--set", "threads=1",
          "--set", f"save_freq={K}", "--set", f"val_freq={K}", "--set", "keep_last=3"]  # fmt: skip
# 8 M parameters: the registry's smallest networks; coarse voxels keep each step ~0.5 s
OPTIONS = {
    "synthetic": ["--model", "Res16UNet14A", "--voxel-size", "0.4",
                  "--set", "synthetic_train_scenes=3", "--set", "synthetic_val_scenes=1"],
    "scannet": ["--model", "Res16UNet14A", "--voxel-size", "0.4"],
    "s3dis": ["--model", "Res16UNet14A", "--voxel-size", "0.4"],
    "synthia4d": ["--model", "STRes16UNet14A", "--voxel-size", "100", "--set", "temporal_window=2"],
}  # fmt: skip


def _tool(name: str) -> str:
    return str(BIN / name)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Prepared tiny datasets: 4 rooms (3 train + 1 val) or 2 sequences of 3 frames."""
    root = tmp_path_factory.mktemp("data")
    out = {}
    for kind, args in (("scannet", ["--scenes", "4"]), ("s3dis", ["--scenes", "4"]),
                       ("synthia4d", ["--scenes", "2", "--frames", "3"])):  # fmt: skip
        raw, prepared = root / kind / "raw", root / kind / "prepared"
        done = run_command(
            [_tool("stseg-data"), "synth", kind, str(raw), *args, "--spacing", "0.1"]
        )
        assert done.returncode == 0, done.stdout
        done = run_command([_tool("stseg-data"), "preprocess", kind, str(raw), str(prepared)])
        assert done.returncode == 0, done.stdout
        out[kind] = prepared
    return out


def _argv(command: str, datasets: dict[str, Path], *args: str) -> list[str]:
    data = [] if command == "synthetic" else ["--data", str(datasets[command])]
    return [_tool("stseg-train"), command, *data, *OPTIONS[command], *COMMON, *args]


def _resume_argv(command: str, run: Path, *args: str) -> list[str]:
    # as a user would type it: the run folder, nothing else (the run's config has the rest)
    return [_tool("stseg-train"), command, "--resume", str(run), *args]


@pytest.fixture(scope="module", params=list(OPTIONS))
def command(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def straight(
    command: str, datasets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Future:
    """The uninterrupted run, started in the background (the 2 cores run it beside the chain)."""
    run = tmp_path_factory.mktemp(f"straight_{command}") / "run"
    pool = ThreadPoolExecutor(1)
    future = pool.submit(run_command, _argv(command, datasets, "--out", str(run)))
    pool.shutdown(wait=False)
    future.run_dir = run  # type: ignore[attr-defined]
    return future


def test_kill_and_resume_equals_the_straight_run(
    command: str, datasets: dict[str, Path], straight: Future, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    first, second = checkpoint_path(run, K), checkpoint_path(run, 2 * K)
    # 1. SIGKILL once checkpoint K is on disk (the process hangs there until killed).
    run_until_hang(_argv(command, datasets, "--out", str(run)), f"hang:0:{K}")
    assert load_checkpoint(first)["iteration"] == K  # verified against its sidecar
    assert not second.exists() and not (run / "checkpoints" / "final.pth").exists()
    # best.pth may be rewritten at iteration 2K before its periodic checkpoint; checkpoint K not
    kept = {first.name, first.name + ".sha256"}
    before = {k: v for k, v in file_fingerprint(run / "checkpoints").items() if k in kept}
    assert len(before) == 2
    # 2. Resume; SIGKILL halfway through writing checkpoint 2K: checkpoint K survives untouched.
    output = run_until_hang(_resume_argv(command, run), f"hang-write:0:{2 * K}")
    assert f"resumed from {first} at iteration {K}" in output
    partial = [p.name for p in (run / "checkpoints").glob(f".{second.name}.*.tmp")]
    assert partial, "the kill did not happen during the write"
    assert not second.exists()
    assert {k: v for k, v in file_fingerprint(run / "checkpoints").items() if k in kept} == before
    # 3. Resume with files limited to half a checkpoint (a full disk): one line, exit 1, K intact.
    limit = first.stat().st_size // 2
    done = run_command(_resume_argv(command, run), file_size_limit=limit)
    assert done.returncode == 1, done.stdout
    line = error_line(done.stdout)
    assert line.startswith("Error: could not save "), line  # best.pth or iteration 2K's
    assert "errno 27" in line and f"newest intact checkpoint is {first.name}" in line, line
    assert f"resumed from {first} at iteration {K}" in done.stdout
    assert not second.exists() and not list((run / "checkpoints").glob(".*.tmp"))
    assert {k: v for k, v in file_fingerprint(run / "checkpoints").items() if k in kept} == before
    # 4. Resume to the end: bitwise the straight run.
    done = run_command(_resume_argv(command, run))
    assert done.returncode == 0, done.stdout
    assert f"resumed from {first} at iteration {K}" in done.stdout
    reference = straight.result()
    assert reference.returncode == 0, reference.stdout
    ref_run: Path = straight.run_dir  # type: ignore[attr-defined]
    for name in ("final.pth", second.name, "best.pth"):
        differences = state_differences(
            load(ref_run / "checkpoints" / name), load(run / "checkpoints" / name)
        )
        assert differences == [], f"{name}: {differences}"
    final = load(run / "checkpoints" / "final.pth")
    assert final["iteration"] == N and len(final["trainer"]["recent_losses"]) == N
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads((ref_run / "metrics.json").read_text())
    assert metrics["iteration"] == N
    if command == "synthetic":
        # the reported bug: `--resume RUN --max-iter M` of a run with its data in RUN/data
        done = run_command(_resume_argv(command, run, "--max-iter", str(N + 1)))
        assert done.returncode == 0, done.stdout
        assert load(run / "checkpoints" / "final.pth")["iteration"] == N + 1
        assert json.loads((run / "summary.json").read_text())["iterations"] == N + 1


def test_second_run_into_an_existing_out_is_refused(
    command: str, datasets: dict[str, Path], straight: Future
) -> None:
    assert straight.result().returncode == 0
    run: Path = straight.run_dir  # type: ignore[attr-defined]
    before = file_fingerprint(run)
    done = run_command(_argv(command, datasets, "--out", str(run)))
    assert done.returncode == 2, done.stdout
    assert "a run already exists there; pass --resume" in error_line(done.stdout)
    assert file_fingerprint(run) == before


def test_resume_of_a_folder_that_is_not_a_run(command: str, tmp_path: Path) -> None:
    folder = tmp_path / "not_a_run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "notes.txt").write_text("hello")
    for target in (folder, tmp_path / "missing"):
        done = run_command(_resume_argv(command, target))
        assert done.returncode == 2, done.stdout
        assert f"--resume {target}: not a training run (no config.json)" in error_line(done.stdout)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoints", "notes.txt"]
