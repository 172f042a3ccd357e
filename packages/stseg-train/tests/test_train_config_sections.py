"""The config's typed sections (`runtime`, `toy`), a task's section (`task_options`) and the
`extra` mapping of earlier versions' config.json: an unknown or mistyped key is one line naming
the key (and the file it came from), exit 2 from the command line, no run folder."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

import stseg_train
from stseg_train.config import TrainConfig, config_from_dict, resolve_config
from stseg_train.errors import TrainInputError
from stseg_train.options import RuntimeOptions, ToyOptions
from stseg_train.runfolder import load_run_config

# a config.json as the code before the typed sections wrote it (an `extra` mapping)
LEGACY = Path(__file__).parent / "data" / "legacy_config.json"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["runtime.device=tpu"], "config: runtime.device must be auto, cpu or cuda, found 'tpu'"),
        (["runtime.cache_scenes=maybe"],
         "--set: config key 'runtime.cache_scenes': expected bool, found 'maybe'"),
        (["runtime.heap_trim_every=true"],
         "--set: config key 'runtime.heap_trim_every': expected int, found True"),
        (["runtime.heap_trim_every=-1"], "runtime.heap_trim_every must be an integer >= 0"),
        (["runtime.heap_mode=keep"], "runtime.heap_mode must be one of trim, retain, found 'keep'"),
        (["runtime.heap_trim=3"],
         "--set: unknown config key(s) runtime.heap_trim; known keys of runtime: allow_reshard, "
         "cache_scenes, device, heap_mode, heap_trim_every"),
        (["runtime=3"], "--set: config key 'runtime': expected a mapping"),
        (["toy.points=0"], "toy.scenes and toy.points must be >= 1"),
        (["toy.ignore=1.0"], "toy.ignore must be in [0, 1), found 1.0"),
        (["lr.value=1"], "--set: unknown config key lr.value: lr is not a section"),
        # internal fields: only code and saved configs set them
        (["task=ssen-instance"], "--set: unknown config key(s) task; known keys: adam_betas"),
        (["synthetic_data_root=/x"], "unknown config key(s) synthetic_data_root"),
        (["task_options={a: 1}"], "unknown config key(s) task_options"),
        # the old spelling names the new one
        (["extra={allow_reshard: true}"],
         "--set: config key 'extra' is gone: its keys are the sections runtime"),
    ],
)  # fmt: skip
def test_a_bad_section_key_is_refused_naming_it(sets: list[str], message: str) -> None:
    with pytest.raises(TrainInputError) as info:
        resolve_config("synthetic", sets=sets)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_section_keys_by_dotted_name_or_mapping() -> None:
    config = resolve_config(
        "synthetic",
        sets=["runtime.heap_mode=retain", "runtime={cache_scenes: false, device: cpu}",
              "toy.ignore=0", "toy={scenes: 3}"],
    )  # fmt: skip
    # a mapping updates the fields it names and keeps the others
    assert config.runtime == RuntimeOptions(heap_mode="retain", cache_scenes=False, device="cpu")
    assert config.toy == ToyOptions(scenes=3, ignore=0.0)
    assert isinstance(config.toy.ignore, float)
    assert TrainConfig().runtime == RuntimeOptions() and RuntimeOptions().cache_scenes is None


def test_a_config_file_names_itself_and_the_key(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("lr: 0.05\nruntime:\n  device: cpu\n  heap_trim_every: 4\ntoy: {bn: false}\n")
    config = resolve_config("synthetic", config_file=good)
    assert (config.lr, config.runtime.device, config.runtime.heap_trim_every) == (0.05, "cpu", 4)
    assert config.toy.bn is False
    toml = tmp_path / "good.toml"
    toml.write_text("[runtime]\nallow_reshard = true\n")
    assert resolve_config("synthetic", config_file=toml).runtime.allow_reshard is True
    bad = tmp_path / "bad.yaml"
    bad.write_text("runtime:\n  devices: cpu\n")
    with pytest.raises(TrainInputError, match=rf"^{bad}: unknown config key\(s\) runtime.devices;"):
        resolve_config("synthetic", config_file=bad)
    bad.write_text("extra:\n  heap_mode: retain\n")
    with pytest.raises(TrainInputError, match=rf"^{bad}: config key 'extra' is gone"):
        resolve_config("synthetic", config_file=bad)


def test_the_saved_config_round_trips() -> None:
    config = resolve_config("synthetic", sets=["runtime.device=cpu", "toy.points=9"])
    config = dataclasses.replace(config, synthetic_data_root="/data/synthetic")
    saved = json.loads(json.dumps(config.to_dict()))
    assert saved["runtime"]["device"] == "cpu" and "extra" not in saved
    assert config_from_dict(saved) == config


def _legacy(tmp_path: Path, **extra: object) -> Path:
    data = json.loads(LEGACY.read_text())
    data["extra"].update(extra)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(data))
    return run


def test_a_config_json_of_the_extra_era_loads_into_the_sections(tmp_path: Path) -> None:
    saved = json.loads(LEGACY.read_text())
    assert "runtime" not in saved and saved["extra"]["heap_mode"] == "retain"
    config = load_run_config(_legacy(tmp_path, synthetic_data_root="/d"))
    assert config.runtime == RuntimeOptions(
        device="cpu", heap_mode="retain", heap_trim_every=3, cache_scenes=False, allow_reshard=True
    )
    assert config.toy == ToyOptions(scenes=5, points=40, bn=False, ignore=0.1)
    assert config.synthetic_data_root == "/d" and config.task == "" and config.task_options == {}
    assert (config.model, config.voxel_size, config.threads) == ("Res16UNet14A", 0.4, 1)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"heap_trim": 3}, "unknown key extra.heap_trim; known keys: allow_reshard"),
        ({"train_files": []}, "unknown key extra.train_files"),  # a task key without a task
        ({"cache_scenes": "maybe"}, "config key 'runtime.cache_scenes': expected bool"),
        ({"device": "tpu"}, "runtime.device must be auto, cpu or cuda"),
    ],
)
def test_a_bad_key_in_an_old_config_json_is_refused_naming_the_file(
    tmp_path: Path, extra: dict, message: str
) -> None:
    run = _legacy(tmp_path, **extra)
    with pytest.raises(TrainInputError) as info:
        stseg_train.validate_config(load_run_config(run))
    assert message in str(info.value)
    if "must be" not in message:  # type and key errors come from the reader, which names the file
        assert str(info.value).startswith(f"{run / 'config.json'}: ")


def test_an_old_task_run_keeps_its_settings_for_the_task(tmp_path: Path) -> None:
    run = _legacy(tmp_path, task="ssen-instance", recipe="synthetic-cpu", train_files=["a.pt"],
                  loss={"delta_pull": 0.2})  # fmt: skip
    config = load_run_config(run)
    assert config.task == "ssen-instance" and config.runtime.heap_mode == "retain"
    assert config.task_options == {
        "recipe": "synthetic-cpu", "train_files": ["a.pt"], "loss": {"delta_pull": 0.2}
    }  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _Inner:
    width: float = 1.0


@dataclasses.dataclass(frozen=True)
class _TaskOptions:
    files: tuple[str, ...] = ()
    steps: int = 3
    flag: bool = False
    inner: _Inner = dataclasses.field(default_factory=_Inner)


def test_a_task_declares_and_reads_its_section() -> None:
    options = _TaskOptions(files=("a", "b"), steps=5, inner=_Inner(width=2.5))
    config = stseg_train.with_task_options(TrainConfig(), "demo-task", options)
    assert config.task == "demo-task" and config.task_options["inner"] == {"width": 2.5}
    stseg_train.validate_config(config)
    # through config.json and back: the mapping, then the task's own dataclass again
    saved = config_from_dict(json.loads(json.dumps(config.to_dict())))
    assert stseg_train.read_task_options(saved, "demo-task", _TaskOptions) == options
    # keys not given take the dataclass's defaults
    partial = dataclasses.replace(config, task_options={"steps": 7})
    read = stseg_train.read_task_options(partial, "demo-task", _TaskOptions)
    assert read == _TaskOptions(steps=7)


@pytest.mark.parametrize(
    ("task", "task_options", "message"),
    [
        ("demo-task", {"step": 1}, "run.json: unknown config key(s) task_options.step; known keys "
         "of task_options: files, flag, inner, steps"),
        ("demo-task", {"steps": 1.5}, "run.json: config key 'task_options.steps': expected int"),
        ("demo-task", {"flag": "maybe"}, "config key 'task_options.flag': expected bool"),
        ("demo-task", {"files": "a"}, "config key 'task_options.files': expected tuple"),
        ("demo-task", {"inner": {"widht": 1}}, "unknown config key(s) task_options.inner.widht"),
        ("other-task", {}, "run.json: task must be 'demo-task', found 'other-task'"),
        ("", {}, "run.json: task must be 'demo-task', found no task (a semantic run)"),
    ],
)  # fmt: skip
def test_a_task_section_refuses_unknown_and_mistyped_keys(
    task: str, task_options: dict, message: str
) -> None:
    config = dataclasses.replace(TrainConfig(), task=task, task_options=task_options)
    with pytest.raises(TrainInputError) as info:
        stseg_train.read_task_options(config, "demo-task", _TaskOptions, where="run.json")
    assert message in str(info.value)


def test_task_options_need_a_task() -> None:
    with pytest.raises(TrainInputError, match="task_options are a task's settings"):
        stseg_train.validate_config(dataclasses.replace(TrainConfig(), task_options={"a": 1}))
    with pytest.raises(TypeError, match="dataclass instance"):
        stseg_train.with_task_options(TrainConfig(), "demo-task", {"steps": 1})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stseg_train", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _error(done: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    return errors[-1]


def test_the_cli_refuses_a_misspelt_section_key_in_one_line(tmp_path: Path) -> None:
    done = _cli("synthetic", "--out", str(tmp_path / "run"), "--set", "runtime.cache_scene=false")
    assert done.returncode == 2, done.stderr
    assert _error(done).startswith("Error: --set: unknown config key(s) runtime.cache_scene;")
    done = _cli("synthetic", "--out", str(tmp_path / "run"), "--set", "extra={allow_reshard: true}")
    assert done.returncode == 2, done.stderr
    assert "--set runtime.allow_reshard=true" in _error(done)
    config = tmp_path / "config.yaml"
    config.write_text("toy:\n  scene: 3\n")
    done = _cli("synthetic", "--out", str(tmp_path / "run"), "--config", str(config))
    assert done.returncode == 2, done.stderr
    assert _error(done).startswith(f"Error: {config}: unknown config key(s) toy.scene;")
    assert not (tmp_path / "run").exists()
