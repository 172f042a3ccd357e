"""The output rule for every stseg-viz command that writes, run as a user runs them (subprocesses).

- an existing output (a file; for `metrics` a non-empty folder) is refused: exit 2, one line, no
  byte of it or of the inputs changed, and refused before any input is read;
- `--overwrite` replaces it;
- a read-only or a full output folder: exit 1, one line naming the path, nothing left behind;
- written files get the umask's mode (0644 under 022, 0640 under 027).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from stseg_data.errors import StsegRuntimeError
from stseg_data.ply import write_ply
from stseg_data.testing import constrained_supported, error_line, file_fingerprint, run_cli
from stseg_viz import metric_plots
from stseg_viz._toy import toy_room

VIZ = [sys.executable, "-m", "stseg_viz"]

#: argv after `stseg-viz` for each command, given the inputs folder and --out.
COMMANDS: dict[str, Callable[[Path, Path], list[str]]] = {
    "export": lambda i, out: ["export", str(i / "scene.ply"), "--out", str(out)],
    "render": lambda i, out: ["render", str(i / "scene.ply"), "--out", str(out)],
    "compare": lambda i, out: ["compare", str(i / "pred.txt"), str(i / "scene.ply"), "--out",
                               str(out)],
    "html": lambda i, out: ["html", str(i / "scene.ply"), "--out", str(out)],
    "metrics": lambda i, out: ["metrics", str(i / "metrics.json"), "--out", str(out)],
    "curves": lambda i, out: ["curves", str(i / "run"), "--out", str(out)],
}  # fmt: skip
OUT_NAMES = {"export": "out.ply", "render": "out.png", "compare": "out.png", "html": "out.html",
             "metrics": "plots", "curves": "curves.png"}  # fmt: skip
#: The first bytes of each command's output.
MAGIC = {".ply": b"ply\n", ".png": b"\x89PNG", ".html": b"<!DOCTYPE html>"}
PRECIOUS = b"the user's own file\n"

needs_tmpfs = pytest.mark.skipif(
    not constrained_supported(), reason="no private tmpfs mounts here (unshare -rm)"
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scene, a prediction, a metrics.json and a run with log.jsonl."""
    folder = tmp_path_factory.mktemp("inputs")
    cloud = toy_room(3000, seed=3)
    extra = {"label": cloud.labels.astype(np.int32), "instance": cloud.instances.astype(np.int32)}
    write_ply(folder / "scene.ply", cloud.xyz, cloud.rgb, extra=extra)
    (folder / "pred.txt").write_text("\n".join(map(str, cloud.labels[::-1])) + "\n")
    metrics = {"class_names": ["wall", "floor", "chair"], "iou": [0.5, 0.9, 0.2],
               "confusion": [[50, 3, 1], [2, 90, 0], [9, 1, 20]]}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "run").mkdir()
    rows = [{"iter": i, "loss": 2.0 / (i + 1), "lr": 0.1} for i in range(40)]
    rows.append({"iter": 39, "val_miou": 0.4})
    (folder / "run" / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _viz(argv: list[str], umask: int | None = None) -> subprocess.CompletedProcess[str]:
    preexec = None if umask is None else (lambda: os.umask(umask))
    return subprocess.run(
        [*VIZ, *argv], capture_output=True, text=True, timeout=120, preexec_fn=preexec
    )


def _make_existing(out: Path, command: str) -> None:
    """An output the user already has: a file, or for `metrics` a folder holding one."""
    if command == "metrics":
        out.mkdir()
        (out / "iou.png").write_bytes(PRECIOUS)
    else:
        out.write_bytes(PRECIOUS)


@pytest.mark.parametrize("command", COMMANDS)
def test_an_existing_output_is_refused(inputs: Path, tmp_path: Path, command: str) -> None:
    out = tmp_path / OUT_NAMES[command]
    _make_existing(out, command)
    before, inputs_before = file_fingerprint(tmp_path), file_fingerprint(inputs)
    result = _viz(COMMANDS[command](inputs, out))
    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert line.startswith(f"Error: {out}: ") and "--overwrite" in line
    assert file_fingerprint(tmp_path) == before  # nothing changed, no temporary file left
    assert file_fingerprint(inputs) == inputs_before


@pytest.mark.parametrize("command", COMMANDS)
def test_the_refusal_comes_before_reading_the_inputs(tmp_path: Path, command: str) -> None:
    # The inputs do not exist: had the command read them first, it would complain about them.
    out = tmp_path / OUT_NAMES[command]
    _make_existing(out, command)
    result = _viz(COMMANDS[command](tmp_path / "missing", out))
    assert result.returncode == 2
    assert error_line(result.stderr).startswith(f"Error: {out}: ")


@pytest.mark.parametrize("command", COMMANDS)
def test_overwrite_replaces_the_output(inputs: Path, tmp_path: Path, command: str) -> None:
    out = tmp_path / OUT_NAMES[command]
    _make_existing(out, command)
    if command == "metrics":
        (out / "notes.txt").write_bytes(PRECIOUS)
    inputs_before = file_fingerprint(inputs)
    result = _viz([*COMMANDS[command](inputs, out), "--overwrite"])
    assert result.returncode == 0, result.stderr
    written = [out / "confusion.png", out / "iou.png"] if command == "metrics" else [out]
    for path in written:
        assert path.read_bytes().startswith(MAGIC[path.suffix]), path
    if command == "metrics":  # files of other names in the folder stay as they were
        assert (out / "notes.txt").read_bytes() == PRECIOUS
        assert sorted(p.name for p in out.iterdir()) == ["confusion.png", "iou.png", "notes.txt"]
    assert file_fingerprint(inputs) == inputs_before


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_that_is_the_wrong_kind_is_refused(inputs: Path, tmp_path: Path, command: str):
    # A folder where a file is to be written, or a file where the plots' folder is to be made.
    out = tmp_path / OUT_NAMES[command]
    if command == "metrics":
        out.write_bytes(PRECIOUS)
    else:
        out.mkdir()
    result = _viz([*COMMANDS[command](inputs, out), "--overwrite"])
    assert result.returncode == 2
    assert error_line(result.stderr).startswith(f"Error: {out}: is a ")
    assert out.is_dir() != (command == "metrics")


# Runs inside the private mount namespace: for "full", fills the 64 KiB tmpfs to 8 KiB short of
# full (every output here is larger), runs the command, then lists what the folder holds.
_RUN_AND_LIST = (
    'folder=$1; fill=$2; shift 2; '
    '[ "$fill" = full ] && head -c 57344 /dev/zero > "$folder/.filler"; '
    '"$@"; code=$?; echo "LEFT:"; ls -A "$folder"; exit $code'
)  # fmt: skip


@needs_tmpfs
@pytest.mark.parametrize("kind", ["readonly", "full"])
@pytest.mark.parametrize("command", COMMANDS)
def test_an_unwritable_output_folder_is_one_line(
    inputs: Path, tmp_path: Path, command: str, kind: str
) -> None:
    where = tmp_path / "mnt"
    out = where / OUT_NAMES[command]
    argv = [
        "sh",
        "-c",
        _RUN_AND_LIST,
        "sh",
        str(where),
        kind,
        *VIZ,
        *COMMANDS[command](inputs, out),
    ]
    inputs_before = file_fingerprint(inputs)
    result = run_cli(argv, constrained=(where, kind), timeout=120)
    assert result.returncode == 1, result.stderr
    line = error_line(result.stderr)
    assert line.startswith(f"Error: {where}")
    assert ("Read-only file system" if kind == "readonly" else "No space left") in line
    left = result.stdout.split("LEFT:\n", 1)[1].split()
    assert left == ([".filler"] if kind == "full" else [])  # no partial file, no staging folder
    assert file_fingerprint(inputs) == inputs_before


@pytest.mark.parametrize("umask", [0o022, 0o027])
@pytest.mark.parametrize("command", COMMANDS)
def test_outputs_get_the_umask_mode(inputs: Path, tmp_path: Path, command: str, umask: int):
    out = tmp_path / OUT_NAMES[command]
    result = _viz(COMMANDS[command](inputs, out), umask=umask)
    assert result.returncode == 0, result.stderr
    files = sorted(out.iterdir()) if command == "metrics" else [out]
    assert files, "nothing written"
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    if command == "metrics":
        assert out.stat().st_mode & 0o777 == 0o777 & ~umask


def test_metrics_writes_all_plots_or_none(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second plot fails (a disk filling up midway): the first must not stay behind either,
    # and the folder this call made is removed again.
    real_save = metric_plots.save_png
    calls: list[Path] = []

    def save_then_fail(figure, path):
        calls.append(Path(path))
        if len(calls) == 2:
            raise StsegRuntimeError(f"{path}: could not write (No space left on device, errno 28)")
        real_save(figure, path)

    monkeypatch.setattr(metric_plots, "save_png", save_then_fail)
    out = tmp_path / "new" / "plots"
    with pytest.raises(StsegRuntimeError) as raised:
        metric_plots.plot_metrics(inputs / "metrics.json", out)
    assert str(raised.value).startswith(f"{out / 'iou.png'}: could not write")  # not the staging
    assert not (tmp_path / "new").exists()
    # Into a folder the user made: it stays, with only what it held before.
    out.mkdir(parents=True)
    (out / "notes.txt").write_bytes(PRECIOUS)
    calls.clear()
    with pytest.raises(StsegRuntimeError):
        metric_plots.plot_metrics(inputs / "metrics.json", out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
