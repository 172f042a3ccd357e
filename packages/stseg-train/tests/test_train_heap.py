"""The trainer's heap modes: per-step trim (default) or retaining freed memory (`heap_mode=retain`).

Both are process-wide glibc settings, so each run is a fresh subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stseg_train.config import TrainConfig
from stseg_train.errors import TrainInputError
from stseg_train.run import prepare_run_dir, worker
from stseg_train.toy import toy_components

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

RSS_AFTER_FREE = """
import json, sys
import numpy as np
from stseg_train.heap import retain_freed_memory
ok = retain_freed_memory() if sys.argv[1] == "retain" else None
def rss():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) / 1024
before = rss()
block = np.ones(256 * 2**20 // 8)  # 256 MiB, every page touched
del block
print(json.dumps({"accepted": ok, "kept_mib": rss() - before}))
"""


def _kept(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", RSS_AFTER_FREE, mode], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return json.loads(out.stdout)


@glibc
def test_retain_keeps_freed_pages_for_reuse() -> None:
    default, retained = _kept("default"), _kept("retain")
    assert retained["accepted"] is True
    # glibc maps a block this large on its own and unmaps it when freed; retained, it stays
    assert default["kept_mib"] < 32
    assert retained["kept_mib"] > 200


TRAIN = """
import json, sys
from pathlib import Path
import torch
from stseg_train.config import TrainConfig
from stseg_train.run import prepare_run_dir, worker
from stseg_train.toy import toy_components
out, mode = Path(sys.argv[1]), sys.argv[2]
config = TrainConfig(dataset="synthetic", out=str(out), num_classes=4, batch_size=3, max_iter=6,
    save_freq=3, val_freq=1000, tensorboard=False, progress=False, threads=1,
    extra={"toy_scenes": 6, "toy_points": 48, "heap_mode": mode})
prepare_run_dir(config, resume=False)
worker(config, toy_components, False)
"""


@glibc
def test_retain_trains_to_the_same_weights(tmp_path: Path) -> None:
    finals = {}
    for mode in ("trim", "retain"):
        subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / mode), mode], check=True)
        payload = torch.load(tmp_path / mode / "checkpoints" / "final.pth", weights_only=True)
        finals[mode] = payload["state_dict"]
    assert finals["trim"].keys() == finals["retain"].keys()
    for key, value in finals["trim"].items():
        assert torch.equal(value, finals["retain"][key]), key


def test_unknown_heap_mode_is_refused(tmp_path: Path) -> None:
    config = TrainConfig(dataset="synthetic", out=str(tmp_path / "run"), num_classes=4,
                         batch_size=3, max_iter=2, tensorboard=False, progress=False, threads=1,
                         extra={"toy_scenes": 3, "toy_points": 48, "heap_mode": "keep"})  # fmt: skip
    prepare_run_dir(config, resume=False)
    with pytest.raises(TrainInputError, match="heap_mode must be one of trim, retain"):
        worker(config, toy_components, False)
