"""noxfile.py's pip arguments for the pins: `STSEG_CONSTRAINTS` (a file of the user's, or `none`)
and, unset, the CPU pin with the source `tools/torch_pin.py` chose (README, "GPU users")."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch_pin

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = ("--extra-index-url", "https://download.pytorch.org/whl/cpu")


@pytest.fixture(scope="module")
def loaded() -> ModuleType:
    """noxfile.py, loaded once (a second load would register its sessions again)."""
    spec = importlib.util.spec_from_file_location("stseg_noxfile", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def noxfile(loaded: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.delenv("STSEG_CONSTRAINTS", raising=False)
    return loaded


def _source(noxfile: ModuleType, monkeypatch: pytest.MonkeyPatch, pin: str, args: tuple) -> None:
    chosen = torch_pin.TorchSource(pin, args, "test")
    monkeypatch.setattr(noxfile, "_torch_source", lambda: chosen)


def test_a_users_constraints_file_replaces_the_cpu_pins(
    noxfile: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mine = tmp_path / "gpu.txt"
    mine.write_text("torch==2.13.0+cu128\n")
    monkeypatch.setenv("STSEG_CONSTRAINTS", str(mine))
    _source(noxfile, monkeypatch, "torch==2.13.0+cpu", CPU_INDEX)  # must not be consulted
    assert noxfile._constraint_args() == ["-c", str(mine)]


@pytest.mark.parametrize("word", ["none", "NONE"])
def test_none_lets_pip_choose(
    noxfile: ModuleType, monkeypatch: pytest.MonkeyPatch, word: str
) -> None:
    monkeypatch.setenv("STSEG_CONSTRAINTS", word)
    assert noxfile._constraint_args() == []


def test_unset_uses_the_cpu_pins_and_the_chosen_index(
    noxfile: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    _source(noxfile, monkeypatch, "torch==2.13.0+cpu", CPU_INDEX)
    assert noxfile._constraint_args() == ["-c", str(ROOT / "constraints" / "cpu.txt"), *CPU_INDEX]


def test_a_fallback_pin_is_written_beside_and_keeps_the_other_pins(
    noxfile: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(noxfile, "ROOT", tmp_path)  # the fallback file goes under ROOT/.nox
    _source(noxfile, monkeypatch, "torch==2.13.0", ())
    args = noxfile._constraint_args()
    assert args[0] == "-c" and Path(args[1]).parent == tmp_path / ".nox" and len(args) == 2
    original = (ROOT / "constraints" / "cpu.txt").read_text()
    written = Path(args[1]).read_text()
    assert torch_pin.read_pin(written) == "torch==2.13.0"
    assert written == original.replace("torch==2.13.0+cpu", "torch==2.13.0")


def _install_block_packages(readme: Path) -> list[str]:
    """The package folders of a README's install section (`<!-- section: install -->`)."""
    text = readme.read_text()
    start, end = "<!-- section: install", "<!-- section: install end -->"
    assert start in text and end in text, f"{readme}: no install section"
    block = text[text.index(start) : text.index(end)]
    return [word for word in block.replace("\\\n", " ").split() if word.startswith("packages/")]


def test_the_standalone_sessions_install_what_the_readmes_say(loaded: ModuleType) -> None:
    # `nox -s standalone-train` proves stseg-train's install block; it must be that block.
    train_readme = ROOT / "packages" / "stseg-train" / "README.md"
    assert _install_block_packages(train_readme) == loaded.TRAIN_STANDALONE
    # `nox -s standalone` (folders) proves the root README's inference-only command.
    root = (ROOT / "README.md").read_text()
    folders = " ".join(loaded.STANDALONE_ROUTES["folders"])
    assert f"--extra-index-url https://download.pytorch.org/whl/cpu \\\n    {folders}\n" in root
