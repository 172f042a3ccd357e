"""The optional background head: targets, loss, checkpoint outputs, removal at inference, training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import stseg_models.sparse as sparse
from ssen_instance.cluster import ClusterParams
from ssen_instance.dataset import background_share
from ssen_instance.errors import InstanceInputError
from ssen_instance.grouping import GroupingConfig
from ssen_instance.inference import InstanceSegmenter, embedding_pass
from ssen_instance.loss import background_loss
from ssen_instance.model import (
    BACKGROUND_OUTPUT,
    embedding_outputs,
    instance_inference_spec,
    load_instance_model,
)
from ssen_instance.scenes import SsenScene, instance_ids, write_ssen_scene
from ssen_instance.toy import toy_room
from ssen_instance.train import has_background_head, ssen_config, ssen_options, train_instance

WALL, FLOOR, CHAIR, IGNORE = 0, 1, 4, 255


def test_background_share_per_voxel() -> None:
    # voxel 0: wall, wall, chair -> 2/3; voxel 1: chair -> 0; voxel 2: floor -> 1;
    # voxel 3: unannotated only -> NaN (no target); voxel 4: unannotated + floor -> 1
    semantic = np.array([WALL, WALL, CHAIR, CHAIR, FLOOR, IGNORE, IGNORE, FLOOR])
    inverse = np.array([0, 0, 0, 1, 2, 3, 4, 4])
    share = background_share(semantic, inverse, 5)
    assert share.dtype == np.float32
    np.testing.assert_allclose(share[[0, 1, 2, 4]], [2 / 3, 0.0, 1.0, 1.0], rtol=1e-6)
    assert math.isnan(share[3])


def test_background_loss_is_bce_on_known_targets() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0], requires_grad=True)
    share = torch.tensor([1.0, 0.0, float("nan"), 0.25])
    loss = background_loss(logits, share)
    # by hand: -[t log s(x) + (1 - t) log(1 - s(x))], mean over the three known entries
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = (
        -(
            math.log(sig(2.0))
            + math.log(1 - sig(-1.0))
            + 0.25 * math.log(sig(3.0))
            + 0.75 * math.log(1 - sig(3.0))
        )
        / 3
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logits.grad is not None and logits.grad[2] == 0.0 and logits.grad[0] != 0.0
    none = background_loss(logits, torch.full((4,), float("nan")))
    assert none.item() == 0.0 and none.requires_grad
    with pytest.raises(InstanceInputError, match="same"):
        background_loss(logits, share[:3])


def test_spec_names_the_head() -> None:
    with_head = instance_inference_spec(8, 0.05, background_head=True)
    assert with_head.class_names[-1] == BACKGROUND_OUTPUT and len(with_head.class_names) == 9
    assert embedding_outputs(with_head) == (8, True)
    assert embedding_outputs(instance_inference_spec(8)) == (8, False)
    semantic_like = instance_inference_spec(8)
    semantic_like.class_names = ["wall", "floor"]
    with pytest.raises(InstanceInputError, match="not an instance"):
        embedding_outputs(semantic_like)


class _FixedHead(nn.Module):
    """Embeddings = the input features; background logit +5 where the red feature > 0."""

    _me = sparse

    def forward(self, x):
        logit = torch.where(x.F[:, :1] > 0.0, 5.0, -5.0)
        feats = torch.cat([x.F, logit], dim=1)
        return sparse.SparseTensor(feats, coordinate_map_key=x.coordinate_map_key,
                                   coordinate_manager=x.coordinate_manager)  # fmt: skip


def test_embedding_pass_removes_what_the_head_calls_background() -> None:
    room = toy_room(num_objects=2, density=40.0, size=1.5, seed=4)
    spec = instance_inference_spec(3, 0.05, background_head=True)
    spec.color_scale, spec.color_offset = 1.0, -0.5  # features = rgb - 0.5
    semantic = room.semantic
    emb, sem, _, _ = embedding_pass(_FixedHead(), spec, room.xyz, room.rgb, semantic)
    kept_emb, kept_sem, _, _ = embedding_pass(
        _FixedHead(), spec, room.xyz, room.rgb, semantic, background_head=False
    )
    fg = np.isin(kept_sem, range(2, 20))
    called_background = fg & (kept_emb[:, 0] > 0.0)
    assert called_background.any() and (fg & ~called_background).any()
    assert (sem[called_background] == IGNORE).all()
    assert (sem[~called_background] == kept_sem[~called_background]).all()
    assert emb.shape[1] == 3 and np.array_equal(emb, kept_emb)  # the logit is not an embedding
    # predict(): head on for predicted semantics only, unless told
    grouping = GroupingConfig(strategy="voxel", params=ClusterParams(min_cluster_size=5))
    seg = InstanceSegmenter(None, None, _FixedHead(), spec, grouping)
    given = seg.predict(room.xyz, room.rgb, semantic)
    forced = seg.predict(room.xyz, room.rgb, semantic, background_head=True)
    covered = lambda p: sum(m.size for m in p.instances.masks)  # noqa: E731
    assert 0 < covered(forced) < covered(given)


def test_training_with_the_head_writes_a_head_checkpoint(tmp_path: Path) -> None:
    room = toy_room(num_objects=2, density=40.0, size=1.5, seed=3)
    predicted = room.semantic.copy()
    predicted[np.flatnonzero(room.semantic == WALL)[:200]] = CHAIR  # the prediction keeps walls
    scene = SsenScene(room.xyz, room.rgb, room.semantic, instance_ids(room.semantic, room.instance),
                      predicted, "scene0001_00")  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    write_ssen_scene(data / "scene0001_00_semantic_segment.pt", scene)
    assert not has_background_head(ssen_config(data, tmp_path / "r", recipe="synthetic-cpu"))
    config = ssen_config(data, tmp_path / "run", recipe="synthetic-cpu", model="Res16UNet14A",
                         max_iter=2, save_freq=2, batch_size=1, background_head=True,
                         background_weight=0.5)  # fmt: skip
    assert has_background_head(config) and ssen_options(config).background_weight == 0.5
    train_instance(config)
    model, spec = load_instance_model(tmp_path / "run" / "instance.pt")
    assert embedding_outputs(spec) == (8, True)
    assert model.model_args["out_channels"] == 9
    original = ssen_config(data, tmp_path / "orig", max_iter=1)
    assert not has_background_head(original)  # the original recipe: semantic removal only
    with pytest.raises(InstanceInputError, match="background_weight"):
        ssen_config(data, tmp_path / "x", recipe="synthetic-cpu", background_weight=-1.0)
