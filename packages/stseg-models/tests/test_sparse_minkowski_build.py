"""`stseg-models install-minkowski`: prerequisite check, wheel cache, CLI error reporting (no real build)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import stseg_models.minkowski_build as mb
from stseg_models.cli import main
from stseg_models.sparse.errors import MinkowskiBuildError


def test_missing_openblas_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mb.shutil, "which", lambda _name: None)
    monkeypatch.setattr(mb, "OPENBLAS_HINTS", (str(tmp_path / "nope.h"),))
    with pytest.raises(MinkowskiBuildError, match="apt-get install libopenblas-dev"):
        mb.check_openblas()


def test_cached_wheel_installs_without_building(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / mb.cache_key()
    folder.mkdir()
    wheel = folder / "MinkowskiEngine-0.5.4-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"fake")
    calls: list[list[str]] = []
    monkeypatch.setattr(mb, "_run", lambda cmd, step, **_kw: calls.append(cmd))
    monkeypatch.setattr(
        mb, "build_wheel", lambda *_a, **_k: pytest.fail("must not build when cached")
    )
    monkeypatch.setattr(
        mb.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "", "")
    )
    result = mb.install_minkowski(cache_dir=tmp_path)
    assert result.cached and result.wheel == wheel
    assert calls and calls[0][-1] == str(wheel) and "--no-deps" in calls[0]


def test_fresh_build_is_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built = tmp_path / "work" / "MinkowskiEngine-0.5.4-cp311-cp311-linux_x86_64.whl"
    built.parent.mkdir()
    built.write_bytes(b"wheel")
    monkeypatch.setattr(mb, "build_wheel", lambda *_a, **_k: built)
    monkeypatch.setattr(mb, "_run", lambda *a, **k: None)
    monkeypatch.setattr(
        mb.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "", "")
    )
    result = mb.install_minkowski(cache_dir=tmp_path / "cache")
    assert not result.cached
    assert result.wheel.read_bytes() == b"wheel" and result.wheel.parent.name == mb.cache_key()


def test_cli_reports_build_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fail(**_kw: object) -> None:
        raise MinkowskiBuildError("compiling MinkowskiEngine failed (exit 1)")

    monkeypatch.setattr(mb, "install_minkowski", fail)
    result = CliRunner().invoke(main, ["install-minkowski", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "compiling MinkowskiEngine failed" in result.output


def test_cli_success_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wheel = tmp_path / "MinkowskiEngine-0.5.4-cp311-cp311-linux_x86_64.whl"
    monkeypatch.setattr(mb, "install_minkowski", lambda **_kw: mb.InstallResult(wheel, True, 0.5))
    result = CliRunner().invoke(main, ["install-minkowski", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "cached wheel" in result.output
