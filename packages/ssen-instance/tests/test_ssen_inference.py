"""Staged inference: semantic pass (rotations), background removal before the embedding pass."""

from __future__ import annotations

import numpy as np
import pytest

from ssen_instance.errors import InstanceInputError
from ssen_instance.inference import InstanceSegmenter, embedding_pass, semantic_pass, voxel_features
from ssen_instance.model import build_embedding_model, instance_inference_spec
from ssen_instance.toy import toy_room
from stseg_data.voxelize import voxelize
from stseg_models.checkpoint import dataset_preset
from stseg_models.zoo import build_model

NAME = "Res16UNet14A"


@pytest.fixture(scope="module")
def room():
    return toy_room(num_objects=2, density=40.0, size=1.5, seed=4)


def test_semantic_pass_with_rotations(room) -> None:
    model = build_model(NAME, 3, 20).eval()
    labels = semantic_pass(model, dataset_preset("scannet"), room.xyz, room.rgb, rotations=2)
    assert labels.shape == (len(room.xyz),) and labels.min() >= 0 and labels.max() < 20
    with pytest.raises(InstanceInputError, match="rotations"):
        semantic_pass(model, dataset_preset("scannet"), room.xyz, room.rgb, rotations=0)
    with pytest.raises(InstanceInputError, match="colour"):
        voxel_features(None, dataset_preset("scannet"), 3)


def test_embedding_pass_skips_background(room) -> None:
    model = build_embedding_model(NAME, 8).eval()
    emb, voxel_sem, inverse, coords = embedding_pass(
        model, instance_inference_spec(8), room.xyz, room.rgb, room.semantic
    )
    assert inverse.shape == (len(room.xyz),) and coords.shape == (len(emb), 3)
    background = ~np.isin(voxel_sem, range(2, 20))
    assert background.any() and (emb[background] == 0).all()
    assert np.abs(emb[~background]).sum(axis=1).min() > 0


def test_given_semantics_skip_the_semantic_network(room) -> None:
    segmenter = InstanceSegmenter(
        None, None, build_embedding_model(NAME, 8), instance_inference_spec(8)
    )
    pred = segmenter.predict(room.xyz, room.rgb, semantic=room.semantic)
    assert pred.times.semantic < 0.01 and pred.instances.num_points == len(room.xyz)
    assert (pred.semantic == room.semantic).all()
    with pytest.raises(InstanceInputError, match="no semantic checkpoint"):
        segmenter.predict(room.xyz, room.rgb)


def test_shared_voxelization_matches_separate_passes(room) -> None:
    # predict() voxelizes once for both passes; the results must equal two separate voxelizations
    sem_model = build_model(NAME, 3, 20).eval()
    emb_model = build_embedding_model(NAME, 8).eval()
    spec = dataset_preset("scannet")
    vox = voxelize(room.xyz, spec.voxel_size)
    alone = semantic_pass(sem_model, spec, room.xyz, room.rgb)
    shared = semantic_pass(sem_model, spec, room.xyz, room.rgb, vox=vox)
    assert (alone == shared).all()
    emb_spec = instance_inference_spec(8, spec.voxel_size)
    a = embedding_pass(emb_model, emb_spec, room.xyz, room.rgb, alone)
    b = embedding_pass(emb_model, emb_spec, room.xyz, room.rgb, alone, vox=vox)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    segmenter = InstanceSegmenter(sem_model, spec, emb_model, emb_spec)
    pred = segmenter.predict(room.xyz, room.rgb)
    assert (pred.semantic == alone).all()
    with pytest.raises(InstanceInputError, match="covers"):
        semantic_pass(sem_model, spec, room.xyz[:-1], room.rgb[:-1], vox=vox)
