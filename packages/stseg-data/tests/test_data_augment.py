"""Augmentations (pure, seeded, guarded), pipelines, collate and the torch-free dataset."""

import numpy as np
import pytest

from stseg_data import augment as A
from stseg_data.collate import collate
from stseg_data.dataset import SceneDataset
from stseg_data.errors import StsegInputError
from stseg_data.pipelines import config_for, prepare_sample
from stseg_data.ply import write_ply


def _cloud(n=500, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.random((n, 3)) * [4, 3, 2.5],
        rng.random((n, 3)).astype(np.float32),
        rng.integers(0, 20, n),
    )


def test_geometry_is_pure_and_seeded():
    xyz, _, _ = _cloud()
    before = xyz.copy()
    bounds = [(-0.05, 0.05), (-0.05, 0.05), (-np.pi, np.pi)]
    a = A.random_rotation(xyz, np.random.default_rng(1), bounds)
    b = A.random_rotation(xyz, np.random.default_rng(1), bounds)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(xyz, before)
    # rotation keeps distances to the centroid
    np.testing.assert_allclose(
        np.linalg.norm(a - a.mean(0), axis=1), np.linalg.norm(xyz - xyz.mean(0), axis=1)
    )
    r = A.rotation_matrix([0.1, -0.2, 2.0])
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    scaled = A.random_scale(xyz, np.random.default_rng(2), (2.0, 2.0))
    np.testing.assert_allclose(scaled - scaled.mean(0), 2 * (xyz - xyz.mean(0)))
    moved = A.random_translation(xyz, np.random.default_rng(3), [(0.5, 0.5), (0, 0), (0, 0)])
    np.testing.assert_allclose(moved[:, 0] - xyz[:, 0], 0.5 * np.ptp(xyz[:, 0]))


def test_flip_including_time_axis():
    xyzt = np.array([[0.0, 0, 0, 0], [1.0, 0, 0, 1], [3.0, 0, 0, 2]])
    flipped = A.random_flip(xyzt, np.random.default_rng(0), axes=(0, 3), p=1.0)
    assert flipped[:, 0].tolist() == [3.0, 2.0, 0.0] and flipped[:, 3].tolist() == [2, 1, 0]


def test_elastic_is_smooth_and_bounded():
    xyz, _, _ = _cloud(2000)
    out = A.elastic_distortion(xyz, np.random.default_rng(0), 0.2, 0.4)
    shift = out - xyz
    assert 0 < np.abs(shift).max() < 0.4 * 1.0
    near = np.linalg.norm(xyz[:, None] - xyz[None, :50], axis=2) < 0.02  # close points move alike
    i, j = np.nonzero(near)
    assert np.abs(shift[i] - shift[j]).max() < 0.05


def test_trilinear_matches_loop_reference():
    grid = np.random.default_rng(0).normal(size=(4, 5, 6, 2))
    coords = np.random.default_rng(1).uniform(0, 3, (50, 3))
    ref = np.zeros((50, 2))
    for n, p in enumerate(coords):
        b = np.minimum(np.floor(p).astype(int), [2, 3, 4])
        f = p - b
        for corner in range(8):
            o = [(corner >> k) & 1 for k in range(3)]
            w = np.prod([f[k] if o[k] else 1 - f[k] for k in range(3)])
            ref[n] += w * grid[b[0] + o[0], b[1] + o[1], b[2] + o[2]]
    np.testing.assert_allclose(A._trilinear(grid, coords), ref, atol=1e-12)


def test_dropout_and_voxel_shift():
    keep = A.random_dropout(100, np.random.default_rng(0), ratio=0.3, p=1.0)
    assert len(keep) == 70 and np.all(np.diff(keep) > 0)
    assert A.random_dropout(1, np.random.default_rng(0), p=1.0).tolist() == [0]
    coords = np.array([[0, 0, 0, 5], [1, 2, 3, 6]], dtype=np.int32)
    shifted = A.random_voxel_shift(coords, np.random.default_rng(0), 10)
    assert np.all(shifted - coords == (shifted - coords)[0]) and np.all(
        shifted[:, 3] == coords[:, 3]
    )


def test_colour_transforms_guard_constant_and_single_points():  # F12
    rgb = np.full((5, 3), 0.4, dtype=np.float32)
    rng = np.random.default_rng(0)
    for fn in (lambda c: A.chromatic_auto_contrast(c, rng, p=1.0), lambda c: A.chromatic_translation(c, rng, p=1.0),
               lambda c: A.chromatic_jitter(c, rng, p=1.0), lambda c: A.hue_saturation(c, rng)):  # fmt: skip
        for colours in (rgb, rgb[:1]):
            out = fn(colours)
            assert (
                out.shape == colours.shape
                and np.isfinite(out).all()
                and out.min() >= 0
                and out.max() <= 1
            )
    np.testing.assert_array_equal(A.chromatic_auto_contrast(rgb, rng, p=1.0), rgb)


def test_hsv_round_trip():
    rgb = np.random.default_rng(0).random((200, 3))
    np.testing.assert_allclose(A.hsv_to_rgb(A.rgb_to_hsv(rgb)), rgb, atol=1e-12)
    import colorsys

    assert np.allclose(A.rgb_to_hsv(rgb[:5]), [colorsys.rgb_to_hsv(*c) for c in rgb[:5]])


def test_pipelines_train_and_eval():
    xyz, rgb, labels = _cloud(3000)
    config = config_for("scannet", voxel_size=0.1)
    ev = prepare_sample(xyz, rgb, labels, config, train=False)
    assert ev["coords"].dtype == np.int32 and ev["features"].dtype == np.float32
    assert (
        len(ev["inverse"]) == 3000 and ev["features"].min() >= -0.5 and ev["features"].max() <= 0.5
    )
    tr1 = prepare_sample(xyz, rgb, labels, config, train=True, rng=np.random.default_rng(4))
    tr2 = prepare_sample(xyz, rgb, labels, config, train=True, rng=np.random.default_rng(4))
    tr3 = prepare_sample(xyz, rgb, labels, config, train=True, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(tr1["coords"], tr2["coords"])
    assert not np.array_equal(tr1["coords"], tr3["coords"])
    with pytest.raises(StsegInputError, match="Generator"):
        prepare_sample(xyz, rgb, labels, config, train=True)
    xyzt = np.column_stack([xyz * 100, np.repeat(np.arange(3), 1000)])
    four = prepare_sample(
        xyzt, rgb, labels, config_for("synthia4d"), train=True, rng=np.random.default_rng(0)
    )
    assert four["coords"].shape[1] == 4 and set(np.unique(four["coords"][:, 3])) <= {0, 1, 2}


def test_collate_offsets_and_point_cap():
    samples = []
    for k in range(3):
        xyz, rgb, labels = _cloud(200, seed=k)
        s = prepare_sample(xyz, rgb, labels, config_for("scannet", 0.3), train=False)
        s["name"] = f"s{k}"
        samples.append(s)
    batch = collate(samples)
    sizes = [len(s["coords"]) for s in samples]
    assert batch["coords"].shape == (sum(sizes), 4) and batch["coords"].dtype == np.int32
    assert batch["voxel_offsets"].tolist() == [0, sizes[0], sizes[0] + sizes[1], sum(sizes)]
    assert batch["coords"][:, 0].tolist() == [b for b, m in enumerate(sizes) for _ in range(m)]
    second = slice(batch["point_offsets"][1], batch["point_offsets"][2])
    np.testing.assert_array_equal(
        batch["labels"][batch["inverse"][second]], samples[1]["labels"][samples[1]["inverse"]]
    )
    capped = collate(samples, max_points=sizes[0] + sizes[1] - 1)
    assert capped["dropped"] == 2 and capped["names"] == ["s0"]
    with pytest.raises(StsegInputError):
        collate([])


def test_dataset_without_torch_and_with_dataloader(tmp_path):
    for k in range(2):
        xyz, rgb, labels = _cloud(400, seed=k)
        write_ply(tmp_path / f"scene{k}.ply", xyz, rgb, {"label": labels, "instance": labels})
    (tmp_path / "train.txt").write_text("scene0.ply\nscene1.ply\n")
    ds = SceneDataset.from_split(
        tmp_path, tmp_path / "train.txt", "scannet", train=True, voxel_size=0.2, num_classes=20
    )
    first = ds[0]
    np.testing.assert_array_equal(
        first["coords"], ds[0]["coords"]
    )  # (seed, epoch, index) fixes the stream
    ds.set_epoch(1)
    assert not np.array_equal(first["coords"], ds[0]["coords"])
    torch = pytest.importorskip("torch")
    from stseg_data.dataset import make_collate_fn

    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=make_collate_fn())
    batch = next(iter(loader))
    assert batch["coords"].dtype == torch.int32 and batch["labels"].dtype == torch.int64
    bad = SceneDataset.from_split(
        tmp_path, tmp_path / "train.txt", "scannet", train=False, voxel_size=0.2, num_classes=5
    )
    with pytest.raises(StsegInputError, match=r"scene0\.ply: .* labels outside \[0, 5\)"):
        bad[0]


def test_sequence_dataset_windows(tmp_path):
    from stseg_data.dataset import SequenceDataset

    entries = []
    for f in range(4):
        rel = f"SEQ/Stereo_Left/{f:06d}.ply"
        xyz = np.random.default_rng(f).random((50, 3)) * 1000
        write_ply(tmp_path / rel, xyz, np.zeros((50, 3), np.uint8), {"label": np.full(50, f % 12)})
        entries.append(rel)
    (tmp_path / "train.txt").write_text("\n".join(entries))
    ds = SequenceDataset.from_split(tmp_path, tmp_path / "train.txt", train=False, voxel_size=30.0)
    assert len(ds) == 2
    sample = ds[1]
    assert sample["coords"].shape[1] == 4 and set(np.unique(sample["coords"][:, 3])) == {0, 1, 2}
    assert len(sample["inverse"]) == 150 and set(np.unique(sample["labels"])) <= {1, 2, 3, 255}


def test_missing_colour_is_an_error_unless_filled():  # F7
    from dataclasses import replace

    xyz, _, labels = _cloud(100)
    config = config_for("scannet", 0.2)
    with pytest.raises(StsegInputError, match="expects 3 colour channels but the scene has none"):
        prepare_sample(xyz, None, labels, config, train=False)
    sample = prepare_sample(xyz, None, labels, replace(config, fill_color=0.5), train=False)
    assert np.all(sample["features"] == 0.0)


def test_quarter_turn_is_an_exact_multiple_of_90_degrees():
    from stseg_data.augment import random_quarter_turn, rotation_matrix

    rng = np.random.default_rng(3)
    xyz = rng.uniform(-2, 3, (50, 3)).round(2)
    seen = set()
    for seed in range(12):
        k = int(np.random.default_rng(seed).integers(4))
        out = random_quarter_turn(xyz, np.random.default_rng(seed))
        centre = xyz.mean(0)
        expected = (xyz - centre) @ rotation_matrix([0.0, 0.0, k * np.pi / 2]).T + centre
        np.testing.assert_allclose(out, expected, atol=1e-9)
        np.testing.assert_array_equal(out[:, 2], xyz[:, 2])  # upright axis untouched
        seen.add(k)
    assert seen == {0, 1, 2, 3}
