"""The five command lines share one definition of each common option, and every option has help.

- every command of stseg-data, stseg-models, stseg-train, ssen-instance and stseg-viz: help text on
  the command and on each option; `--resume`, `--threads`, `--device`, `--rotations`, `--out` and
  `--overwrite` are the `stseg_data.cli_options` definitions (same type, range and help);
  `--help` fits a screen (<= 40 lines of <= 100 columns);
- through the real console entry points (subprocesses): `--threads 0`, `--device cuda` without
  CUDA, an unknown device and a bare `--resume` (the old flag form) are exit 2 with one line;
  `--resume RUN` is the run folder in each command that resumes (the refusal of a folder that is
  not a run names RUN, also where `--out`/OUT is left out).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from stseg_data import cli_options
from stseg_data.cli_options import SharedOption
from stseg_models.precision import PRECISIONS as MODEL_PRECISIONS

CLIS = {
    "stseg-data": "stseg_data",
    "stseg-models": "stseg_models",
    "stseg-train": "stseg_train",
    "ssen-instance": "ssen_instance",
    "stseg-viz": "stseg_viz",
}
SHARED = ("resume", "threads", "device", "precision", "rotations", "out", "overwrite")
FIXED_HELP = {
    "resume": cli_options.RESUME_HELP,
    "device": cli_options.DEVICE_HELP,
    "rotations": cli_options.ROTATIONS_HELP,
}


def _commands() -> list[tuple[str, str, click.Command]]:
    found = []
    for prog, module in CLIS.items():
        group = importlib.import_module(f"{module}.cli").main
        found.append((prog, "", group))
        found += [(prog, name, command) for name, command in group.commands.items()]  # type: ignore[attr-defined]
    return found


COMMANDS = _commands()
IDS = [f"{prog} {name}".strip() for prog, name, _ in COMMANDS]


@pytest.mark.parametrize(("prog", "name", "command"), COMMANDS, ids=IDS)
def test_every_command_and_option_has_help(prog: str, name: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"{prog} {name}: no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{prog} {name} {param.opts[0]}: no help text"


@pytest.mark.parametrize(("prog", "name", "command"), COMMANDS, ids=IDS)
def test_shared_options_are_the_one_definition(
    prog: str, name: str, command: click.Command
) -> None:
    for param in command.params:
        shared = [s for s in SHARED if f"--{s}" in param.opts]
        if not shared:
            continue
        where = f"{prog} {name} --{shared[0]}"
        assert isinstance(param, SharedOption) and param.shared == shared[0], where
        kind = shared[0]
        if kind in FIXED_HELP:
            assert param.help == FIXED_HELP[kind], where
        if kind in ("threads", "rotations"):
            assert isinstance(param.type, click.IntRange), where
            assert (param.type.min, param.type.max, param.metavar) == (1, None, "N"), where
        if kind == "threads":
            assert (param.help or "").startswith("CPU threads for torch, N >= 1 (default: "), where
        if kind == "resume":
            assert isinstance(param.type, cli_options.RunFolder) and param.metavar == "RUN", where
        if kind == "device":
            assert isinstance(param.type, cli_options.Device) and param.default == "cpu", where
        if kind == "out":
            assert isinstance(param.type, click.Path) and param.type.type is Path, where
            assert param.metavar == "PATH", where
        if kind == "precision":
            assert isinstance(param.type, click.Choice), where
            assert tuple(param.type.choices) == cli_options.PRECISIONS == ("fp32", "bf16", "fp16")
            # the library's names (stseg_models.precision) are the option's
            assert tuple(MODEL_PRECISIONS) == cli_options.PRECISIONS, where
            assert (param.help or "").startswith(cli_options.PRECISION_HELP), where
        if kind == "overwrite":
            assert param.is_flag and (param.help or "").endswith(cli_options.OVERWRITE_TAIL), where


def test_the_shared_options_are_used_where_expected() -> None:
    """The walk above checks something: these commands carry these shared options."""
    names = {(prog, name): {p.name for p in c.params} for prog, name, c in COMMANDS}
    assert {"resume", "overwrite"} <= names[("stseg-data", "preprocess")]
    assert {"out_dir", "overwrite", "rotations", "device", "precision", "threads"} <= names[
        ("stseg-models", "predict")
    ]
    assert {"resume", "out", "precision"} <= names[("stseg-train", "scannet")]
    assert {"out", "overwrite", "rotations", "precision", "threads"} <= names[
        ("stseg-train", "eval")
    ]
    assert "precision" in names[("stseg-train", "export-benchmark")]
    assert {"resume", "out", "precision"} <= names[("ssen-instance", "train")]
    assert "precision" in names[("ssen-instance", "predict")]
    assert {"resume", "out", "overwrite", "threads"} <= names[("ssen-instance", "demo")]
    assert {"out", "overwrite", "rotations", "device", "precision", "threads"} <= names[
        ("ssen-instance", "eval")
    ]
    assert {"out", "overwrite"} <= names[("stseg-viz", "render")]


@pytest.mark.parametrize(("prog", "name", "command"), COMMANDS, ids=IDS)
def test_help_fits_a_screen(prog: str, name: str, command: click.Command) -> None:
    group = importlib.import_module(f"{CLIS[prog]}.cli").main
    args = [name, "--help"] if name else ["--help"]
    result = CliRunner().invoke(group, args, prog_name=prog, terminal_width=100)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) <= 40, f"{prog} {name}: {len(lines)} lines"
    assert max(len(line) for line in lines) <= 100


def _cli(prog: str, *args: object) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", CLIS[prog], *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a usage error (exit 2, nothing else printed)."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


THREADS_COMMANDS = [
    ("stseg-models", "predict", "scene.ply", "-w", "w.pt"),
    ("stseg-train", "eval", "run", "--data", "d"),
    ("stseg-train", "export-benchmark", "run", "--data", "d", "--out", "o"),
    ("ssen-instance", "eval", ".", "--instance-weights", __file__),
    ("ssen-instance", "demo",),
]  # fmt: skip


@pytest.mark.parametrize("argv", THREADS_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_threads_zero_is_one_line_exit_2(argv: tuple[str, ...], tmp_path: Path) -> None:
    line = _one_line(_cli(*argv, "--threads", "0", "--out", tmp_path / "never"))
    assert "'--threads': 0 is not in the range x>=1" in line
    assert not (tmp_path / "never").exists()


DEVICE_COMMANDS = [
    ("stseg-models", "predict", "scene.ply", "-w", "w.pt"),
    ("ssen-instance", "predict", __file__, "--out", "o", "--semantic-weights", __file__,
     "--instance-weights", __file__),
]  # fmt: skip


@pytest.mark.parametrize("argv", DEVICE_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_bad_devices_are_one_line_exit_2(argv: tuple[str, ...]) -> None:
    import torch

    if not torch.cuda.is_available():
        line = _one_line(_cli(*argv, "--device", "cuda"))
        assert "'--device': cuda: CUDA is not available" in line and "use --device cpu" in line
    line = _one_line(_cli(*argv, "--device", "cuda:99"))
    assert "'--device': cuda:99: " in line and "use --device cpu" in line
    line = _one_line(_cli(*argv, "--device", "tpu"))
    assert "expected cpu, cuda or cuda:N, got 'tpu'" in line


RESUME_COMMANDS = [
    ("stseg-data", "preprocess", "scannet", "raw", "out"),
    ("stseg-train", "scannet"),
    ("stseg-train", "synthetic"),
    ("ssen-instance", "train"),
    ("ssen-instance", "demo"),
]


@pytest.mark.parametrize("argv", RESUME_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_bare_resume_names_the_new_form(argv: tuple[str, ...]) -> None:
    for args in ((*argv, "--resume"), (*argv, "--resume", "--max-iter", "3")):
        if argv[0] == "stseg-data" and "--max-iter" in args:
            continue  # preprocess has no --max-iter: the bare flag at the end is the old form
        line = _one_line(_cli(*args))
        assert "'--resume': give the folder of the run to continue: --resume RUN" in line


def test_resume_run_is_the_folder_in_each_command(tmp_path: Path) -> None:
    run = tmp_path / "not-a-run"
    run.mkdir()
    (run / "mine.txt").write_text("keep")
    raw = tmp_path / "raw"
    done = _cli("stseg-data", "synth", "scannet", raw, "--scenes", "1", "--spacing", "0.2")
    assert done.returncode == 0, done.stderr
    results = {
        "preprocess": _cli("stseg-data", "preprocess", "scannet", raw, "--resume", run),
        "stseg-train": _cli("stseg-train", "scannet", "--resume", run),
        "ssen train": _cli("ssen-instance", "train", "--resume", run),
        "demo": _cli("ssen-instance", "demo", "--resume", run, "--no-view"),
    }
    expected = {
        "preprocess": f"Error: {run}: refused: --resume continues only a folder written by",
        "stseg-train": f"Error: --resume {run}: not a training run (no config.json)",
        "ssen train": f"Error: --resume {run}: not a training run (no config.json)",
        "demo": f"Error: --resume {run}: not a demo folder (no demo.json)",
    }
    for name, result in results.items():
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        lines = [line for line in (result.stdout + result.stderr).splitlines() if "Error" in line]
        assert len(lines) == 1 and lines[0].startswith(expected[name]), (name, lines)
    assert sorted(p.name for p in run.iterdir()) == ["mine.txt"]
    # RUN and a different --out name two runs: refused before anything is read
    other = _cli("ssen-instance", "demo", "--resume", run, "--out", tmp_path / "elsewhere")
    assert "name different folders" in _one_line(other)
    assert not (tmp_path / "elsewhere").exists()
