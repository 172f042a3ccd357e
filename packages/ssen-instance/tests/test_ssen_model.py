"""Embedding network: head size, init from a semantic checkpoint minus its head, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ssen_instance.errors import InstanceInputError
from ssen_instance.model import (
    build_embedding_model,
    forward_sparse,
    init_from_semantic,
    load_instance_model,
    save_instance_checkpoint,
)
from stseg_models.checkpoint import dataset_preset, save_checkpoint
from stseg_models.errors import CheckpointMismatchError
from stseg_models.zoo import build_model

NAME = "Res16UNet14A"  # small registry network; the default backbone is Mink16UNet34C


def _batch(m: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    coords = np.unique(rng.integers(0, 8, (m, 3)), axis=0)
    c = torch.from_numpy(np.column_stack([np.zeros(len(coords)), coords]).astype(np.int32))
    return c, torch.from_numpy(rng.random((len(coords), 3)).astype(np.float32))


def test_embedding_head_and_forward() -> None:
    model = build_embedding_model(NAME, embedding_dim=5).eval()
    coords, feats = _batch()
    with torch.no_grad():
        out = forward_sparse(model, coords, feats)
    assert out.shape == (len(coords), 5) and torch.isfinite(out).all()
    with pytest.raises(InstanceInputError, match="embedding_dim"):
        build_embedding_model(NAME, embedding_dim=0)


def test_init_from_semantic_skips_the_head(tmp_path: Path) -> None:
    semantic = build_model(NAME, 3, 20)
    with torch.no_grad():
        for p in semantic.parameters():
            p.add_(torch.randn_like(p))
    save_checkpoint(tmp_path / "sem.pt", semantic, dataset_preset("scannet"))
    model = build_embedding_model(NAME, 8)
    head_before = model.final.kernel.detach().clone()
    report = init_from_semantic(model, tmp_path / "sem.pt")
    assert all(k.startswith("final.") for k in report.missing) and report.missing
    assert not report.skipped and report.fraction > 0.95
    sem_state, emb_state = semantic.state_dict(), model.state_dict()
    body = [k for k in sem_state if not k.startswith("final.")]
    assert all(torch.equal(sem_state[k], emb_state[k]) for k in body)
    assert torch.equal(model.final.kernel, head_before)
    other = build_model("Res16UNet14B", 3, 20)
    save_checkpoint(tmp_path / "other.pt", other, dataset_preset("scannet"))
    with pytest.raises(CheckpointMismatchError):
        init_from_semantic(build_embedding_model(NAME, 8), tmp_path / "other.pt")


def test_instance_checkpoint_round_trip(tmp_path: Path) -> None:
    model = build_embedding_model(NAME, 8).eval()
    save_instance_checkpoint(tmp_path / "inst.pt", model)
    loaded, spec = load_instance_model(tmp_path / "inst.pt")
    assert len(spec.class_names) == 8 and spec.voxel_size == 0.02
    coords, feats = _batch()
    with torch.no_grad():
        assert torch.equal(
            forward_sparse(model, coords, feats), forward_sparse(loaded, coords, feats)
        )


def test_trainer_checkpoint_keeps_the_run_voxel_size(tmp_path: Path) -> None:
    # a stseg-train checkpoint (state_dict + model_args + config) of a 5 cm recipe loads at 5 cm
    model = build_embedding_model(NAME, 8, bn_momentum=0.1)
    payload = {
        "state_dict": model.state_dict(),
        "model_args": dict(model.model_args),  # type: ignore[arg-type]
        "config": {"voxel_size": 0.05},
    }
    torch.save(payload, tmp_path / "iter.pth")
    loaded, spec = load_instance_model(tmp_path / "iter.pth")
    assert spec.voxel_size == 0.05 and len(spec.class_names) == 8
    assert {m.momentum for m in loaded.modules() if hasattr(m, "running_mean")} == {0.1}
