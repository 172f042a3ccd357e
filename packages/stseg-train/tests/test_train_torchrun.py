"""`torchrun --standalone --nproc-per-node 2` (the README's one-machine command) with 2 gloo CPU
processes x batch B ends with the same parameters as 1 process with batch 2B."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SCRIPT = textwrap.dedent(
    """
    import sys
    from stseg_train import TrainConfig, train
    from stseg_train.options import ToyOptions
    from stseg_train.toy import toy_components

    if __name__ == "__main__":
        out, batch = sys.argv[1], int(sys.argv[2])
        config = TrainConfig(
            dataset="synthetic", out=out, num_classes=4, batch_size=batch, max_iter=4,
            save_freq=2, val_freq=1000, lr=0.05, tensorboard=False, progress=False, threads=1,
            dist_timeout_s=60.0,
            toy=ToyOptions(scenes=8, points=32, bn=False, ignore=0.0),
        )
        train(config, toy_components)
    """
)


def test_torchrun_two_processes_match_one_process_with_the_doubled_batch(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", str(script),
         str(tmp_path / "two"), "2"],
        env=env, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-2000:]
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one"), "4"],
        env=env, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    final = {
        n: torch.load(tmp_path / n / "checkpoints" / "final.pth", weights_only=True)
        for n in ("one", "two")
    }
    assert final["two"]["world_size"] == 2 and final["one"]["world_size"] == 1
    for key, value in final["one"]["state_dict"].items():
        assert torch.allclose(value, final["two"]["state_dict"][key], atol=1e-6), key
    losses = {n: [loss for _, loss in final[n]["trainer"]["recent_losses"]] for n in final}
    assert losses["two"] == pytest.approx(losses["one"], abs=1e-6)
    assert len(losses["one"]) == 4 and losses["one"][-1] < losses["one"][0]  # it trained


def test_the_readmes_torchrun_command_trains_a_dataset_run(tmp_path: Path) -> None:
    """`torchrun --standalone --nproc-per-node N -m stseg_train scannet --data D --out RUN`, as the
    README writes it (2 CPU processes, a tiny prepared ScanNet set, 2 iterations)."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    raw, prepared, run = tmp_path / "raw", tmp_path / "prepared", tmp_path / "run"
    for argv in (
        [
            str(bin_dir / "stseg-data"),
            "synth",
            "scannet",
            str(raw),
            "--scenes",
            "3",
            "--spacing",
            "0.1",
        ],
        [str(bin_dir / "stseg-data"), "preprocess", "scannet", str(raw), str(prepared)],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=200)
        assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run(
        [str(bin_dir / "torchrun"), "--standalone", "--nproc-per-node", "2", "-m", "stseg_train",
         "scannet", "--data", str(prepared), "--out", str(run), "--model", "Res16UNet14A",
         "--voxel-size", "0.4", "--max-iter", "2", "--batch-size", "1", "--threads", "1",
         "--set", "progress=false", "--set", "tensorboard=false", "--set", "val_freq=2"],
        env=env, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    final = torch.load(run / "checkpoints" / "final.pth", weights_only=True)
    assert final["world_size"] == 2 and final["iteration"] == 2
    assert (run / "metrics.json").is_file() and not (run / ".lock").exists()
