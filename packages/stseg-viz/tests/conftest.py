"""Fixtures of the stseg-viz tests: a small synthetic room written as PLY, with a prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stseg_data.ply import write_ply
from stseg_viz._toy import toy_room


@pytest.fixture(scope="session")
def room(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{"scene": room.ply (xyz, rgb, label, instance), "pred": pred.txt, "cloud", "pred_labels"}."""
    folder: Path = tmp_path_factory.mktemp("room")
    cloud = toy_room(3000, seed=1)
    scene = folder / "room.ply"
    extra = {"label": cloud.labels.astype(np.int32), "instance": cloud.instances.astype(np.int32)}
    write_ply(scene, cloud.xyz, cloud.rgb, extra=extra)
    pred_labels = cloud.labels.copy()
    pred_labels[::5] = 3  # 20 % relabelled as "cabinet"
    pred = folder / "pred.txt"
    pred.write_text("\n".join(str(v) for v in pred_labels) + "\n")
    return {"scene": scene, "pred": pred, "cloud": cloud, "pred_labels": pred_labels, "dir": folder}
