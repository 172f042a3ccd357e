"""`--threads N` on the training commands, `--device` on `eval` and `export-benchmark`, and
`--resume` of a run whose config.json has the `extra` mapping of earlier versions, through the
real `stseg-train` entry point (subprocesses, as users type them)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from stseg_train.checkpoint import load_checkpoint
from stseg_train.crashtest import error_line, file_fingerprint, run_command

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
TOOL = str(Path(sys.executable).parent / "stseg-train")
# a config.json as the code before the typed sections wrote it (an `extra` mapping)
LEGACY = Path(__file__).parent / "data" / "legacy_config.json"
SMALL = ["--model", "Res16UNet14A", "--voxel-size", "0.4", "--batch-size", "1",
         "--set", "progress=false", "--set", "tensorboard=false",
         "--set", "val_freq=1", "--set", "save_freq=1"]  # fmt: skip


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stseg_data.preprocess import preprocess
    from stseg_data.synth import write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic("scannet", root / "raw", 3, seed=3)
    preprocess("scannet", root / "raw", root / "prepared")
    return root / "prepared"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, prepared: Path) -> Path:
    """A 1-iteration scannet run trained with `--threads 2` (the config said nothing of threads)."""
    run = tmp_path_factory.mktemp("runs") / "run"
    done = run_command([TOOL, "scannet", "--data", str(prepared), "--out", str(run), *SMALL,
                        "--max-iter", "1", "--threads", "2"])  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    return run


def test_threads_is_recorded_in_the_run_config(trained: Path) -> None:
    saved = json.loads((trained / "config.json").read_text())
    assert saved["threads"] == 2 and saved["runtime"]["device"] == "auto"


@pytest.mark.parametrize("command", ["scannet", "s3dis", "synthia4d", "synthetic"])
def test_threads_below_one_is_refused(tmp_path: Path, prepared: Path, command: str) -> None:
    done = run_command([TOOL, command, "--data", str(prepared), "--out", str(tmp_path / "r"),
                        "--threads", "0"])  # fmt: skip
    assert done.returncode == 2 and "--threads" in error_line(done.stdout)
    assert not (tmp_path / "r").exists()


def test_threads_given_on_resume_replaces_the_runs(tmp_path: Path, trained: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    done = run_command([TOOL, "scannet", "--resume", str(run), "--max-iter", "2",
                        "--threads", "1"])  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    saved = json.loads((run / "config.json").read_text())
    assert (saved["threads"], saved["max_iter"]) == (1, 2)
    assert load_checkpoint(run / "checkpoints" / "final.pth")["iteration"] == 2


def _extra_era_run(tmp_path: Path, trained: Path, prepared: Path, **extra: object) -> Path:
    """`trained` with the config.json the code before typed sections wrote (`extra` mapping)."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    saved = json.loads(LEGACY.read_text())
    saved.update(data=str(prepared), out=str(run))
    saved["extra"].update(extra)
    (run / "config.json").write_text(json.dumps(saved, indent=2, sort_keys=True))
    return run


def test_resume_of_a_run_of_the_extra_era(tmp_path: Path, trained: Path, prepared: Path) -> None:
    run = _extra_era_run(tmp_path, trained, prepared)
    done = run_command([TOOL, "scannet", "--resume", str(run), "--max-iter", "2"])
    assert done.returncode == 0, done.stdout[-3000:]
    assert json.loads(done.stdout[done.stdout.index("{") :])["iteration"] == 2
    # config.json is now in the sections' form, with the old run's settings
    saved = json.loads((run / "config.json").read_text())
    assert "extra" not in saved and saved["max_iter"] == 2 and saved["threads"] == 1
    assert saved["runtime"] == {"device": "cpu", "heap_mode": "retain", "heap_trim_every": 3,
                                "cache_scenes": False, "allow_reshard": True}  # fmt: skip
    assert saved["toy"] == {"scenes": 5, "points": 40, "bn": False, "ignore": 0.1}
    assert saved["task"] == "" and saved["task_options"] == {}


def test_resume_refuses_an_unknown_key_of_the_extra_era(
    tmp_path: Path, trained: Path, prepared: Path
) -> None:
    run = _extra_era_run(tmp_path, trained, prepared, heap_trim=3)
    before = file_fingerprint(run)
    done = run_command([TOOL, "scannet", "--resume", str(run), "--max-iter", "2"])
    assert done.returncode == 2
    line = error_line(done.stdout)
    assert line.startswith(f"Error: {run / 'config.json'}: unknown key extra.heap_trim; "), line
    assert file_fingerprint(run) == before


def test_eval_device_cpu_and_a_device_this_machine_lacks(tmp_path: Path, trained: Path,
                                                         prepared: Path) -> None:  # fmt: skip
    out = tmp_path / "eval.json"
    done = run_command([TOOL, "eval", str(trained), "--data", str(prepared), "--device", "cpu",
                        "--out", str(out)])  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    cpu = json.loads(out.read_text())
    assert cpu["scenes"] == 1 and 0.0 <= cpu["miou"] <= 1.0
    missing = "cuda:99" if torch.cuda.is_available() else "cuda"
    done = run_command([TOOL, "eval", str(trained), "--data", str(prepared), "--device", missing,
                        "--out", str(tmp_path / "gpu.json")])  # fmt: skip
    assert done.returncode == 2 and "--device" in error_line(done.stdout)
    assert not (tmp_path / "gpu.json").exists()
    done = run_command([TOOL, "eval", str(trained), "--data", str(prepared), "--device", "tpu"])
    assert done.returncode == 2 and "expected cpu, cuda or cuda:N" in error_line(done.stdout)
    if torch.cuda.is_available():  # the same metrics from the GPU (float tolerance on logits)
        gpu = tmp_path / "cuda.json"
        done = run_command([TOOL, "eval", str(trained), "--data", str(prepared), "--device",
                            "cuda", "--out", str(gpu)])  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:]
        assert abs(json.loads(gpu.read_text())["miou"] - cpu["miou"]) < 1e-3


def test_export_benchmark_device(tmp_path: Path, trained: Path, prepared: Path) -> None:
    out = tmp_path / "submission"
    done = run_command([TOOL, "export-benchmark", str(trained), "--data", str(prepared),
                        "--split", "val", "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    written = sorted(out.glob("*.txt"))
    assert len(written) == 1 and written[0].read_text().split()
    missing = "cuda:99" if torch.cuda.is_available() else "cuda"
    done = run_command([TOOL, "export-benchmark", str(trained), "--data", str(prepared),
                        "--split", "val", "--out", str(tmp_path / "x"), "--device", missing])  # fmt: skip
    assert done.returncode == 2 and "--device" in error_line(done.stdout)
