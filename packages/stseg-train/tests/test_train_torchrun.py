"""`torchrun --standalone --nproc-per-node 2` (the README's one-machine command) with 2 gloo CPU
processes x batch B ends with the same parameters as 1 process with batch 2B; the README's
one-machine and two-machine `torchrun ... -m stseg_train scannet` commands train a dataset run (the
two "machines" are two torchrun launchers on this host, `--nnodes 2 --node-rank 0|1`, each with
LOCAL_RANK 0, sharing the run folder as a shared filesystem would)."""

from __future__ import annotations

import json
import os
import socket
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


def _prepared_scannet(root: Path, env: dict[str, str]) -> Path:
    """A tiny prepared ScanNet set (3 synthetic rooms at 10 cm spacing)."""
    bin_dir = Path(sys.executable).parent
    raw, prepared = root / "raw", root / "prepared"
    for argv in (
        [str(bin_dir / "stseg-data"), "synth", "scannet", str(raw), "--scenes", "3", "--spacing", "0.1"],
        [str(bin_dir / "stseg-data"), "preprocess", "scannet", str(raw), str(prepared)],
    ):  # fmt: skip
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=200)
        assert done.returncode == 0, done.stderr[-2000:]
    return prepared


def _train_args(prepared: Path, run: Path) -> list[str]:
    return ["-m", "stseg_train", "scannet", "--data", str(prepared), "--out", str(run),
            "--model", "Res16UNet14A", "--voxel-size", "0.4", "--max-iter", "2", "--batch-size", "1",
            "--threads", "1", "--set", "progress=false", "--set", "tensorboard=false",
            "--set", "val_freq=2"]  # fmt: skip


def _assert_finished_two_process_run(run: Path) -> None:
    final = torch.load(run / "checkpoints" / "final.pth", weights_only=True)
    assert final["world_size"] == 2 and final["iteration"] == 2
    assert (run / "metrics.json").is_file() and not (run / ".lock").exists()


def test_the_readmes_torchrun_command_trains_a_dataset_run(tmp_path: Path) -> None:
    """`torchrun --standalone --nproc-per-node N -m stseg_train scannet --data D --out RUN`, as the
    README writes it (2 CPU processes, a tiny prepared ScanNet set, 2 iterations)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    prepared, run = _prepared_scannet(tmp_path, env), tmp_path / "run"
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", *_train_args(prepared, run)],
        env=env, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_finished_two_process_run(run)


def _free_port() -> int:
    # The port may be taken between this probe and torchrun's bind; a test on a busy CI machine
    # would then fail with "address in use", not pass wrongly.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_readmes_two_machine_torchrun_command_trains_one_run(tmp_path: Path) -> None:
    """`torchrun --nnodes 2 --node-rank R --nproc-per-node 1 --master-addr HOST0 --master-port P
    -m stseg_train scannet ...` started once per "machine": one run, written by global rank 0 only
    (node 1's process has LOCAL_RANK 0 too, so a writer chosen by local rank would write twice)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    prepared, run = _prepared_scannet(tmp_path, env), tmp_path / "run"
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    port = str(_free_port())

    def node(rank: int) -> list[str]:
        return [torchrun, "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1",
                "--master-addr", "127.0.0.1", "--master-port", port, *_train_args(prepared, run)]  # fmt: skip

    nodes = [
        subprocess.Popen(
            node(rank), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for rank in (0, 1)
    ]
    try:
        outputs = [node.communicate(timeout=200)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n---\n".join(o[-3000:] for o in outputs)
    _assert_finished_two_process_run(run)
    # One run folder, one log: node 1 wrote nothing of its own beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared", "raw", "run"]
    lines = (run / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["iter"] for line in lines] == [1, 2]  # each record once, not twice
