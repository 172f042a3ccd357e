"""`Segmenter.predict` against a slow, obviously-correct reference, and its bad-input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.checkpoint import InferenceSpec, dataset_preset, save_checkpoint
from stseg_models.errors import CheckpointError, PredictInputError
from stseg_models.inference import Segmenter, rotation_z
from stseg_models.zoo import build_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def scannet_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("Res16UNet14A", 3, 20)
    with torch.no_grad():  # a non-trivial head, so labels vary from point to point
        model.final.bias.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("ckpt") / "scannet.pt"
    save_checkpoint(path, model, dataset_preset("scannet"))
    return path


@pytest.fixture(scope="module")
def seg(scannet_ckpt) -> Segmenter:
    return Segmenter.from_checkpoint(scannet_ckpt)


def _cloud(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(0.0, 0.6, size=(n, 3)) + np.array([100.0, -20.0, 3.0])
    rgb = rng.uniform(0.0, 1.0, size=(n, 3)).astype(np.float32)
    return xyz, rgb


def _reference_logits(seg: Segmenter, xyz: np.ndarray, rgb: np.ndarray, angle: float) -> np.ndarray:
    """Point logits [N, C] by a plain loop: centre x and y, rotate, floor, first point's colour."""
    pts = (xyz - [*xyz[:, :2].mean(axis=0), 0.0]) @ rotation_z(angle).T
    keys = [tuple(v) for v in np.floor(pts / seg.spec.voxel_size).astype(np.int64)]
    first: dict[tuple, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    voxels = list(first)
    coords = torch.tensor([[0, *v] for v in voxels], dtype=torch.int32)
    feats = torch.from_numpy(rgb[[first[v] for v in voxels]] - 0.5)
    with torch.no_grad():
        out = seg.model(ME.SparseTensor(feats, coordinates=coords))
    row = {tuple(c[1:].tolist()): r for r, c in enumerate(out.C)}
    return out.F.numpy()[[row[k] for k in keys]]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_predict_matches_slow_reference(seg):
    xyz, rgb = _cloud()
    labels, probs = seg.predict(xyz, rgb)
    expected = _softmax(_reference_logits(seg, xyz, rgb, 0.0))
    assert labels.shape == (len(xyz),) and probs.shape == (len(xyz), 20)
    assert labels.dtype == np.int64 and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-5)
    assert np.array_equal(labels, expected.argmax(1))
    assert probs.std(axis=0).max() > 1e-4  # not a constant output


def test_heights_are_kept_and_horizontal_shifts_do_not_matter(seg):
    # training never shifts the upright axis, so the network may read heights off the grid:
    # prediction centres x and y only; a horizontal shift of the cloud changes nothing
    xyz, rgb = _cloud(400, seed=5)
    _, probs = seg.predict(xyz, rgb)
    _, shifted = seg.predict(xyz + np.array([12.34, -5.67, 0.0]), rgb)
    np.testing.assert_allclose(shifted, probs, atol=1e-5)
    reference = _softmax(_reference_logits(seg, xyz, rgb, 0.0))
    np.testing.assert_allclose(probs, reference, atol=1e-5)


def test_rotations_average_logits(seg):
    xyz, rgb = _cloud(1500, seed=1)
    _, probs = seg.predict(xyz, rgb, rotations=3)
    logits = [_reference_logits(seg, xyz, rgb, 2 * math.pi * k / 3) for k in range(3)]
    np.testing.assert_allclose(probs, _softmax(sum(logits) / 3), rtol=1e-4, atol=1e-5)


def test_points_in_one_voxel_share_the_prediction(seg):
    xyz, rgb = _cloud(500, seed=2)
    xyz = np.repeat(xyz, 3, axis=0) + np.tile(
        [[0.0, 0.0, 0.0], [1e-4, 0, 0], [0, 1e-4, 0]], (500, 1)
    )
    rgb = np.repeat(rgb, 3, axis=0)
    labels, probs = seg.predict(xyz, rgb)
    same_voxel = np.floor((xyz - [*xyz[:, :2].mean(0), 0.0]) / 0.02)
    for a in range(0, 60, 3):
        if (same_voxel[a] == same_voxel[a + 1]).all():
            assert labels[a] == labels[a + 1] and np.array_equal(probs[a], probs[a + 1])


def test_chunked_scatter_matches_one_chunk(seg, monkeypatch):
    import stseg_models.inference as inference

    xyz, rgb = _cloud(1000, seed=3)
    whole = seg.predict(xyz, rgb)[1]
    monkeypatch.setattr(inference, "POINT_CHUNK", 97)
    np.testing.assert_array_equal(seg.predict(xyz, rgb)[1], whole)


def test_fill_color_equals_constant_colour(seg):
    xyz, _ = _cloud(800, seed=4)
    grey = np.full(xyz.shape, 0.5, dtype=np.float32)
    np.testing.assert_array_equal(
        seg.predict(xyz, None, fill_color=(0.5, 0.5, 0.5))[1], seg.predict(xyz, grey)[1]
    )


def test_colour_free_model_needs_no_rgb(tmp_path):
    model = build_model("Res16UNet14A", 1, 4)
    spec = InferenceSpec(class_names=list("abcd"), voxel_size=0.05, features="none")
    save_checkpoint(tmp_path / "nocolor.pt", model, spec)
    seg = Segmenter.from_checkpoint(tmp_path / "nocolor.pt")
    labels, probs = seg.predict(_cloud(400)[0])
    assert labels.shape == (400,) and probs.shape == (400, 4)
    assert labels.min() >= 0 and labels.max() < 4


@pytest.mark.parametrize(
    ("xyz", "rgb", "match"),
    [
        (np.zeros((0, 3)), np.zeros((0, 3)), "0 points"),
        (np.array([[0.0, 0, 0], [np.nan, 0, 0]]), np.zeros((2, 3)), "non-finite.*index 1"),
        (np.array([[0.0, 0, 0], [np.inf, 0, 0]]), np.zeros((2, 3)), "non-finite"),
        (np.zeros((5, 2)), np.zeros((5, 3)), r"shape \[N, 3\]"),
        (np.zeros((5, 3)), None, "expects 3 colour channels.*--fill-color"),
        (np.zeros((5, 3)), np.full((5, 3), 255.0), r"rgb must be finite and in \[0, 1\]"),
        (np.zeros((5, 3)), np.zeros((4, 3)), "rgb has shape"),
    ],
)
def test_bad_clouds_raise_clear_errors(seg, xyz, rgb, match):
    with pytest.raises(PredictInputError, match=match):
        seg.predict(xyz, rgb)


def test_bad_rotation_count(seg):
    with pytest.raises(PredictInputError, match="rotations"):
        seg.predict(*_cloud(10), rotations=0)


def test_original_checkpoint_needs_model_and_dataset(tmp_path, scannet_ckpt):
    ckpt = torch.load(scannet_ckpt, weights_only=True)
    torch.save({"state_dict": ckpt["state_dict"]}, tmp_path / "orig.pth")
    with pytest.raises(CheckpointError, match="--model NAME --dataset"):
        Segmenter.from_checkpoint(tmp_path / "orig.pth")
    seg = Segmenter.from_checkpoint(
        tmp_path / "orig.pth", model_name="Res16UNet14A", dataset="scannet"
    )
    assert seg.num_classes == 20 and seg.spec.voxel_size == 0.02


@pytest.fixture(scope="module")
def synthia_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt4d") / "synthia.pt"
    save_checkpoint(path, build_model("STRes16UNet14A", 3, 12), dataset_preset("synthia4d"))
    return path


def test_4d_network_predicts_with_frame_indices(synthia_ckpt):
    seg = Segmenter.from_checkpoint(synthia_ckpt)
    assert seg.dimension == 4 and seg.spec.voxel_size == 15.0
    rng = np.random.default_rng(0)
    xyz = rng.uniform(0, 300.0, size=(1200, 3))  # centimetres, as Synthia4D
    rgb = rng.uniform(0, 1, size=(1200, 3)).astype(np.float32)
    frames = np.repeat(np.arange(3), 400)
    labels, probs = seg.predict(xyz, rgb, time=frames, rotations=2)
    assert labels.shape == (1200,) and probs.shape == (1200, 12)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    with pytest.raises(PredictInputError, match="frame index"):
        seg.predict(xyz, rgb)
    with pytest.raises(PredictInputError, match="integer frame indices"):
        seg.predict(xyz, rgb, time=frames[:10])


def test_time_for_a_3d_network_is_an_error(seg):
    with pytest.raises(PredictInputError, match="3D"):
        seg.predict(*_cloud(10), time=np.zeros(10, dtype=np.int64))


@pytest.mark.parametrize("device", ["gpu7", "cuda:0"])
def test_unusable_device_is_a_clear_error(scannet_ckpt, device):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(PredictInputError, match="device"):
        Segmenter.from_checkpoint(scannet_ckpt, device=device)


@pytest.mark.gpu
def test_cuda_matches_cpu(scannet_ckpt):
    xyz, rgb = _cloud(2000, seed=5)
    cpu = Segmenter.from_checkpoint(scannet_ckpt).predict(xyz, rgb)[1]
    gpu = Segmenter.from_checkpoint(scannet_ckpt, device="cuda").predict(xyz, rgb)[1]
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-4)
