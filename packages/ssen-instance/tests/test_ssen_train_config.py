"""Training recipes: the original's defaults, the CPU recipe, overrides, and the norms' momentum."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ssen_instance.errors import InstanceInputError
from ssen_instance.loss import DiscriminativeLossConfig
from ssen_instance.model import build_embedding_model
from ssen_instance.scenes import SsenScene, instance_ids, write_ssen_scene
from ssen_instance.toy import toy_room
from ssen_instance.train import RECIPES, SsenOptions, resume_config, ssen_config, ssen_options
from stseg_train.checkpoint import load_checkpoint
from stseg_train.errors import TrainInputError


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    room = toy_room(num_objects=2, density=40.0, size=1.5, seed=3)
    scene = SsenScene(room.xyz, room.rgb, room.semantic, instance_ids(room.semantic, room.instance),
                      room.semantic, "scene0001_00")  # fmt: skip
    write_ssen_scene(tmp_path / "scene0001_00_semantic_segment.pt", scene)
    return tmp_path


def test_default_recipe_is_the_original(data: Path, tmp_path: Path) -> None:
    config = ssen_config(data, tmp_path / "run")
    assert (config.model, config.voxel_size, config.lr, config.batch_size) == (
        "Mink16UNet34C",
        0.02,
        1e-4,
        8,
    )
    assert (config.optimizer, config.scheduler, config.step_size, config.step_gamma) == (
        "adam",
        "step",
        10000,
        0.8,
    )
    assert config.clip_grad_norm == 0.5 and config.bn_momentum == 0.02
    assert config.max_iter == 60000 and ssen_options(config).recipe == "ssen"
    assert config.task == "ssen-instance" and config.task_options["recipe"] == "ssen"


def test_cpu_recipe_and_overrides(data: Path, tmp_path: Path) -> None:
    config = ssen_config(data, tmp_path / "run", recipe="synthetic-cpu")
    for key, value in RECIPES["synthetic-cpu"].items():
        if key == "background_head":  # SSEN's own section (`SsenOptions`), not TrainConfig's
            assert getattr(ssen_options(config), key) == value, key
        else:
            assert getattr(config, key) == value, key
    assert config.voxel_size == 0.05 and config.bn_momentum == 0.1
    # an explicit value wins over the recipe, None keeps the recipe's
    config = ssen_config(
        data, tmp_path / "run", recipe="synthetic-cpu", lr=3e-4, model=None, max_iter=7
    )
    assert config.lr == 3e-4 and config.model == "Res16UNet14F" and config.max_iter == 7
    assert config.val_freq > config.max_iter  # no validation pass inside SSEN training
    with pytest.raises(InstanceInputError, match="unknown recipe"):
        ssen_config(data, tmp_path / "run", recipe="fast")
    with pytest.raises(InstanceInputError, match="unknown training setting"):
        ssen_config(data, tmp_path / "run", learning_rate=1.0)


def test_loss_constants_from_recipe_or_override(data: Path, tmp_path: Path) -> None:
    # the original recipe keeps SSEN's loss (the defaults)
    assert ssen_options(ssen_config(data, tmp_path / "run")).loss == DiscriminativeLossConfig()
    config = ssen_config(data, tmp_path / "run", loss={"weight_pull": 4.0, "delta_pull": 0.05})
    assert config.task_options["loss"] == {
        "delta_pull": 0.05, "delta_push": 0.5, "weight_pull": 4.0, "weight_push": 10.0,
        "weight_reg": 0.0, "count_power": 1.0,
    }  # fmt: skip
    with pytest.raises(InstanceInputError, match=r"unknown loss setting.*delta_pul"):
        ssen_config(data, tmp_path / "run", loss={"delta_pul": 0.1})


def test_bn_momentum_reaches_the_norms() -> None:
    model = build_embedding_model("Res16UNet14A", 8, bn_momentum=0.1)
    momenta = {m.momentum for m in model.modules() if hasattr(m, "running_mean")}
    assert momenta == {0.1}
    assert model.model_args["bn_momentum"] == 0.1  # type: ignore[index]


def _run_folder(tmp_path: Path, saved: dict) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps(saved))
    return run


def _extra_era(config_dict: dict, extra: dict) -> dict:
    """A config.json as the code before typed sections wrote it: no runtime/toy/task fields, and
    the trainer's and the task's keys in one `extra` mapping."""
    saved = {k: v for k, v in config_dict.items()
             if k not in ("runtime", "toy", "task", "task_options", "synthetic_data_root")}  # fmt: skip
    return {**saved, "extra": extra}


def test_a_run_of_the_extra_era_resumes_with_its_settings(data: Path, tmp_path: Path) -> None:
    files = [str(f) for f in sorted(data.glob("*.pt"))]
    new = ssen_config(data, tmp_path / "run", recipe="synthetic-cpu").to_dict()
    extra = {"task": "ssen-instance", "recipe": "synthetic-cpu", "semantic_weights": "sem.pth",
             "train_files": files, "background_head": True, "background_weight": 0.25,
             "loss": {"delta_pull": 0.2}, "cache_scenes": False}  # fmt: skip
    run = _run_folder(tmp_path, _extra_era(new, extra))
    config = resume_config(run, max_iter=9)
    assert config.max_iter == 9 and config.runtime.cache_scenes is False
    options = ssen_options(config)
    assert options == SsenOptions(
        recipe="synthetic-cpu", semantic_weights="sem.pth", train_files=tuple(files),
        loss=DiscriminativeLossConfig(delta_pull=0.2), background_head=True, background_weight=0.25,
    )  # fmt: skip
    assert "extra" not in config.to_dict() and config.task_options["background_head"] is True


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("background_hed", True, "unknown config key(s) task_options.background_hed; known keys "
         "of task_options: background_head, background_weight, loss, recipe"),
        ("background_head", "maybe", "config key 'task_options.background_head': expected bool"),
        ("train_files", "a.pt", "config key 'task_options.train_files': expected tuple"),
        ("loss", {"delta_pul": 0.1}, "unknown config key(s) task_options.loss.delta_pul"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("era", ["extra", "sections"])
def test_an_unknown_or_mistyped_ssen_key_in_a_run_is_refused(
    data: Path, tmp_path: Path, era: str, key: str, value: object, message: str
) -> None:
    new = ssen_config(data, tmp_path / "run").to_dict()
    if era == "extra":
        saved = _extra_era(new, {"task": "ssen-instance", **new["task_options"], key: value})
    else:
        saved = {**new, "task_options": {**new["task_options"], key: value}}
    run = _run_folder(tmp_path, saved)
    with pytest.raises(TrainInputError) as info:
        resume_config(run)
    assert message in str(info.value) and str(info.value).startswith(f"{run / 'config.json'}: ")


def test_train_threads_option_is_recorded_and_changes_on_resume(data: Path, tmp_path: Path) -> None:
    from stseg_train.crashtest import error_line, run_command

    run = tmp_path / "run"
    tool = str(Path(sys.executable).parent / "ssen-instance")
    small = ["--model", "Res16UNet14A", "--voxel-size", "0.05", "--batch-size", "1",
             "--recipe", "synthetic-cpu", "--save-freq", "1"]  # fmt: skip
    done = run_command([tool, "train", "--data", str(data), "--out", str(run), *small,
                        "--max-iter", "1", "--threads", "0"])  # fmt: skip
    assert done.returncode == 2 and "--threads" in error_line(done.stdout) and not run.exists()
    # the recipe says 1 thread; --threads wins and is what config.json records
    done = run_command([tool, "train", "--data", str(data), "--out", str(run), *small,
                        "--max-iter", "1", "--threads", "2"])  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert json.loads((run / "config.json").read_text())["threads"] == 2
    done = run_command([tool, "train", "--resume", str(run), "--max-iter", "2", "--threads", "1"])
    assert done.returncode == 0, done.stdout[-3000:]
    saved = json.loads((run / "config.json").read_text())
    assert (saved["threads"], saved["max_iter"], saved["task"]) == (1, 2, "ssen-instance")
    assert load_checkpoint(run / "checkpoints" / "final.pth")["iteration"] == 2


def test_train_precision_option_is_recorded_and_refuses_unknown_names(
    data: Path, tmp_path: Path
) -> None:
    from stseg_train.crashtest import run_command

    run = tmp_path / "run"
    tool = str(Path(sys.executable).parent / "ssen-instance")
    small = ["--model", "Res16UNet14A", "--voxel-size", "0.05", "--batch-size", "1",
             "--recipe", "synthetic-cpu", "--save-freq", "1", "--threads", "1", "--max-iter", "1"]  # fmt: skip
    done = run_command([tool, "train", "--data", str(data), "--out", str(run), *small,
                        "--precision", "fp8"])  # fmt: skip
    assert done.returncode == 2 and "fp8" in done.stdout and not run.exists()
    done = run_command([tool, "train", "--data", str(data), "--out", str(run), *small,
                        "--precision", "bf16"])  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"
    assert load_checkpoint(run / "checkpoints" / "final.pth")["iteration"] == 1


def test_resume_with_another_recipe_size_model_or_voxel_is_refused(
    data: Path, tmp_path: Path
) -> None:
    """README ("Resuming training"): `--resume RUN` with another --recipe, --embedding-dim, model
    or voxel size than the run's is one line, exit 2, and changes no file of the run; so is a
    semantic run given to ssen-instance."""
    from stseg_train.config import resolve_config
    from stseg_train.crashtest import error_line, file_fingerprint, run_command

    run = tmp_path / "run"
    tool = str(Path(sys.executable).parent / "ssen-instance")
    small = ["--model", "Res16UNet14A", "--voxel-size", "0.05", "--batch-size", "1",
             "--recipe", "synthetic-cpu", "--save-freq", "1", "--threads", "1"]  # fmt: skip
    done = run_command([tool, "train", "--data", str(data), "--out", str(run), *small,
                        "--max-iter", "1"])  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    before = file_fingerprint(run)
    for option, value, says in (
        ("--recipe", "ssen", "recipe"),
        ("--embedding-dim", "4", "--embedding-dim"),
        ("--model", "Res16UNet34C", "model"),
        ("--voxel-size", "0.1", "voxel_size"),
    ):
        done = run_command([tool, "train", "--resume", str(run), option, value, "--max-iter", "2"])
        line = error_line(done.stdout)
        assert done.returncode == 2, (option, done.stdout[-2000:])
        assert line.startswith("Error: ") and says in line, (option, line)
        assert file_fingerprint(run) == before, option
    semantic = tmp_path / "semantic"
    semantic.mkdir()
    (semantic / "config.json").write_text(json.dumps(resolve_config("scannet").to_dict()))
    done = run_command([tool, "train", "--resume", str(semantic)])
    assert done.returncode == 2 and "not an ssen-instance run" in error_line(done.stdout)
