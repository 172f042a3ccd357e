"""`ssen-instance train` on scenes too small for the network: one line, exit 2, no traceback.

A 2 m toy room at 10 cm voxels shrinks to a single voxel at Res16UNet14A's coarsest level, where
torch's batch norm refuses to train on one value per channel.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ssen_instance.scenes import SsenScene, instance_ids, write_ssen_scene
from ssen_instance.toy import toy_room

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
TOOL = str(Path(sys.executable).parent / "ssen-instance")


def test_single_voxel_batch_norm_is_a_one_line_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for seed in range(2):
        room = toy_room(num_objects=2, density=60.0, size=2.0, seed=seed)
        name = f"scene{seed:04d}_00"
        scene = SsenScene(room.xyz, room.rgb, room.semantic,
                          instance_ids(room.semantic, room.instance), room.semantic, name)  # fmt: skip
        write_ssen_scene(data / f"{name}_semantic_segment.pt", scene)
    run = tmp_path / "run"
    argv = [TOOL, "train", "--data", str(data), "--out", str(run), "--model", "Res16UNet14A",
            "--voxel-size", "0.1", "--batch-size", "1", "--max-iter", "4"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "a batch norm got a single voxel" in lines[0]
    assert "scene000" in lines[0] and "--voxel-size" in lines[0]
