"""`extra` holds known keys of known types only: a misspelt or mistyped key is one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stseg_train.config import resolve_config
from stseg_train.errors import TrainInputError


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{device: tpu}", "extra.device must be auto, cpu or cuda, found 'tpu'"),
        ("{cache_scenes: maybe}", "extra.cache_scenes must be bool, found 'maybe'"),
        ("{heap_trim_every: true}", "extra.heap_trim_every must be int, found True"),
        ("{heap_trim: 3}", "unknown key extra.heap_trim; known keys: allow_reshard"),
    ],
)
def test_a_bad_extra_key_is_refused(value: str, message: str) -> None:
    with pytest.raises(TrainInputError, match="config: ") as info:
        resolve_config("synthetic", sets=[f"extra={value}"])
    assert message in str(info.value)


def test_known_extra_keys_pass() -> None:
    sets = ["extra={heap_mode: retain, cache_scenes: false, toy_ignore: 0, device: cpu}"]
    assert resolve_config("synthetic", sets=sets).extra["cache_scenes"] is False


def test_the_cli_refuses_a_misspelt_extra_key_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stseg_train", "synthetic", "--out", str(tmp_path / "run"),
         "--set", "extra={cache_scene: false}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert errors[-1].startswith("Error: config: unknown key extra.cache_scene"), errors
    assert not (tmp_path / "run").exists()
