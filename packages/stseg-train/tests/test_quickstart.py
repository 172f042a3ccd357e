"""The root README's Quickstart, run as written, in order (issue 15, item 4).

The commands are read from README.md (or the draft named by STSEG_QUICKSTART_README) between `<!-- quickstart:begin -->` and
`<!-- quickstart:end -->` (every ```bash block there, one command a line, `&&` chains split) and
run in a scratch "clone" (a copy of noxfile.py beside links to the real packages/ and
constraints/), so a run never touches the repository's own runs/ folder. What the test
substitutes, and nothing else:

* `python3 -m venv DIR`: run (in the scratch clone), and DIR must then hold `bin/activate` and
  `bin/pip`; `. DIR/bin/activate` (or `source`): not run, this test environment stands in for it.
* `pip install nox` (or `python3 -m pip install nox`): not run; nox must already be importable
  here (requirements/test.txt).
* `nox ...` (or `python3 -m nox ...`): run with this interpreter as `python -m nox --no-venv
  --no-install -f <scratch>/noxfile.py ...`: the sessions' own code, with this test environment
  (every package installed editable) standing in for the virtual environment nox would build.
* `nox -s tests`: not run (it is this very suite).
* the demo's `stseg-train synthetic`: a shim on PATH appends `--max-iter 2` and a 5-room data set
  (1 evaluation rotation, no loader worker), so the demo takes seconds, not ten minutes; every
  step of it (data, preprocessing, training, evaluation, prediction, render) still runs.

Any other command runs in bash with a fresh machine's PATH (this environment's bin/ removed), so
a bare `stseg-models ...` fails here as it would for a new user.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
BEGIN, END = "<!-- quickstart:begin -->", "<!-- quickstart:end -->"
TINY_DEMO = (
    "--max-iter 2 --set synthetic_train_scenes=4 --set synthetic_val_scenes=1 "
    "--set eval_rotations=1 --set num_workers=0 --set threads=1 "
    "--set progress=false --set tensorboard=false"
)


def quickstart_commands(readme: str) -> list[list[str]]:
    """Commands (argument lists) of the ```bash blocks between the quickstart markers, in order."""
    if BEGIN not in readme or END not in readme:
        raise AssertionError(f"README.md has no Quickstart between {BEGIN} and {END}")
    region = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    commands: list[list[str]] = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", region, flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                commands.append(words[:cut])
                words = words[cut + 1 :]
    return [c for c in commands if c]


def test_commands_are_read_from_the_marked_region() -> None:
    text = (
        "intro\n```bash\nnot-this\n```\n" + BEGIN + "\n```bash\n"
        "python3 -m pip install nox && python3 -m nox -s demo   # comment\n\n"
        "# a comment line\npython3 -m nox -s run -- stseg-viz html 'a b.ply' --out v.html\n```\n"
        "text\n" + END + "\n```bash\nnor-this\n```\n"
    )
    assert quickstart_commands(text) == [
        ["python3", "-m", "pip", "install", "nox"],
        ["python3", "-m", "nox", "-s", "demo"],
        [
            "python3",
            "-m",
            "nox",
            "-s",
            "run",
            "--",
            "stseg-viz",
            "html",
            "a b.ply",
            "--out",
            "v.html",
        ],
    ]
    with pytest.raises(AssertionError, match="quickstart:begin"):
        quickstart_commands("no markers here")


def _fresh_path(bin_dir: Path) -> str:
    """PATH without this environment's bin/: what a new user's shell finds."""
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(p for p in parts if p and Path(p).resolve() != bin_dir.resolve())


def _scratch_clone(tmp: Path) -> Path:
    clone = tmp / "clone"
    clone.mkdir()
    shutil.copy(ROOT / "noxfile.py", clone / "noxfile.py")
    for name in ("packages", "constraints", "requirements", "tools"):
        if (ROOT / name).exists():
            (clone / name).symlink_to(ROOT / name)
    return clone


def _demo_shim(tmp: Path, bin_dir: Path) -> Path:
    """A `stseg-train` first on PATH that makes `stseg-train synthetic` tiny (see the docstring)."""
    shim_dir = tmp / "shim"
    shim_dir.mkdir()
    real = bin_dir / "stseg-train"
    shim = shim_dir / "stseg-train"
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = synthetic ]; then exec "{real}" "$@" {TINY_DEMO}; fi\n'
        f'exec "{real}" "$@"\n'
    )
    shim.chmod(0o755)
    return shim_dir


def _sessions(nox_args: list[str]) -> list[str]:
    names: list[str] = []
    for i, word in enumerate(nox_args):
        if word == "--":
            break
        if word in ("-s", "--session", "--sessions"):
            names += [w for w in nox_args[i + 1 :] if not w.startswith("-")][:1]
    return names


def _tool_of(words: list[str]) -> tuple[str, list[str]]:
    """("pip" | "nox" | "venv" | "", its arguments) for `pip ...`, `python3 -m pip ...`, etc."""
    if words[:2] == ["python3", "-m"] and len(words) > 2 and words[2] in ("pip", "nox", "venv"):
        return words[2], words[3:]
    if words[0] in ("pip", "pip3", "nox"):
        return words[0].rstrip("3"), words[1:]
    return "", words


def _check_predict(args: list[str], clone: Path) -> None:
    """`stseg-models predict INPUT --out DIR`: DIR/<stem>_pred.ply labels every input point."""
    from plyfile import PlyData

    from stseg_data.labels import SCANNET_NYU40_IDS

    scene = clone / args[2]
    out = clone / args[args.index("--out") + 1]
    written = out / f"{scene.stem}_pred.ply"
    assert written.is_file(), f"predict wrote no {written}"
    points = PlyData.read(str(scene))["vertex"].count
    labels = np.asarray(PlyData.read(str(written))["vertex"]["label"])
    assert len(labels) == points > 1000
    assert set(np.unique(labels).tolist()) <= set(SCANNET_NYU40_IDS)


def _check_html(args: list[str], clone: Path) -> None:
    page = clone / args[args.index("--out") + 1]
    text = page.read_text()
    assert text.lstrip().lower().startswith("<!doctype html") and len(text) > 100_000


@pytest.mark.timeout(900)
def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    readme = Path(os.environ.get("STSEG_QUICKSTART_README", ROOT / "README.md"))
    commands = quickstart_commands(readme.read_text())
    bin_dir = Path(sys.executable).parent
    clone = _scratch_clone(tmp_path)
    fresh = _fresh_path(bin_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": fresh}
    nox_env = {
        **env,
        "PATH": os.pathsep.join([str(_demo_shim(tmp_path, bin_dir)), str(bin_dir), fresh]),
    }
    ran: list[str] = []
    venvs: list[Path] = []
    for words in commands:
        line = shlex.join(words)
        tool, args = _tool_of(words)
        if words[0] in (".", "source"):
            assert len(words) == 2 and any(
                clone / words[1] == v / "bin" / "activate" for v in venvs
            ), f"`{line}` activates no virtual environment the Quickstart created"
            continue
        if tool == "pip":
            assert args == ["install", "nox"], f"unexpected pip line: {line}"
            try:
                import nox  # noqa: F401
            except ImportError:
                pytest.fail("nox is not installed in the test environment (requirements/test.txt)")
            continue
        if tool == "nox":
            if "tests" in _sessions(args):
                continue  # the suite running this test
            argv = [sys.executable, "-m", "nox", "--no-venv", "--no-install",
                    "-f", str(clone / "noxfile.py"), *args]  # fmt: skip
            done = subprocess.run(argv, cwd=clone, env=nox_env, capture_output=True, text=True)
        else:
            done = subprocess.run(["bash", "-c", line], cwd=clone, env=env,
                                  capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, f"`{line}` exited {done.returncode}:\n{done.stderr[-3000:]}"
        ran.append(line)
        if tool == "venv":
            venv = clone / args[0]
            assert (venv / "bin" / "activate").is_file() and (venv / "bin" / "pip").exists(), line
            venvs.append(venv)
        posargs = words[words.index("--") + 1 :] if "--" in words else []
        if posargs[:2] == ["stseg-models", "predict"]:
            _check_predict(posargs, clone)
        if posargs[:2] == ["stseg-viz", "html"]:
            _check_html(posargs, clone)
    assert any("-s demo" in line for line in ran), ran
    assert (clone / "runs" / "demo" / "checkpoints" / "final.pth").is_file()
