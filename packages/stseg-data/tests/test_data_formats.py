"""Dataset readers on generated fixtures: ScanNet raw scans, S3DIS rooms, Synthia4D windows,
SSEN .pt, numpy files, split lists (F6, F14, F15, F28 / E3, D12)."""

import json
import os
import sys

import numpy as np
import pytest

from stseg_data.errors import (
    DatasetFormatError,
    PointCloudReadError,
    SplitFileError,
    StsegInputError,
    UnsafeFileError,
)
from stseg_data.io import read_scene
from stseg_data.labels import (
    IGNORE_LABEL,
    SCANNET_CLASS_NAMES,
    SCANNET_INSTANCE_CLASS_IDS,
    SCANNET_NYU40_IDS,
    check_label_range,
    nyu40_to_scannet20,
    s3dis_name_to_id,
    scannet20_to_nyu40,
    synthia16_to_12,
)
from stseg_data.ply import write_ply
from stseg_data.s3dis import read_s3dis_room
from stseg_data.scannet import read_label_tsv, read_scannet_scene
from stseg_data.splits import read_split
from stseg_data.synthia import read_window, temporal_windows


def test_label_maps():
    assert (
        len(SCANNET_CLASS_NAMES) == 20
        and SCANNET_NYU40_IDS[12] == 14
        and SCANNET_CLASS_NAMES[12] == "desk"
    )
    assert len(SCANNET_INSTANCE_CLASS_IDS) == 18 and 0 not in SCANNET_INSTANCE_CLASS_IDS
    raw = np.array([0, 1, 2, 13, 14, 39, 40, 50, 149, -3])
    assert nyu40_to_scannet20(raw).tolist() == [255, 0, 1, 255, 12, 19, 255, 255, 255, 255]
    with pytest.raises(StsegInputError, match=r"outside the map: \[-3, 50, 149\]"):
        nyu40_to_scannet20(raw, strict=True)
    assert scannet20_to_nyu40(np.arange(20)).tolist() == list(SCANNET_NYU40_IDS)
    assert synthia16_to_12(np.arange(16)).tolist() == [
        255,
        255,
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        255,
        255,
        11,
    ]
    assert s3dis_name_to_id("clutter") == 12 and s3dis_name_to_id("stairs") == IGNORE_LABEL
    with pytest.raises(StsegInputError, match="unknown S3DIS class 'sofas'"):
        s3dis_name_to_id("sofas")
    with pytest.raises(StsegInputError, match="first at index 1 = 25"):
        check_label_range(np.array([3, 25, 255]), 20, "scene")


def _scannet_scene(root, n=30, name="scene0001_00", labels_n=None, bad_segment=False):
    rng = np.random.default_rng(0)
    folder = root / "scans" / name
    xyz = rng.random((n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    faces = np.array([[0, 1, 2]])
    write_ply(
        folder / f"{name}_vh_clean_2.ply",
        xyz,
        rgb,
        {"alpha": np.full(n, 255, np.uint8)},
        faces=faces,
    )
    m = labels_n or n
    nyu = np.array([1, 2, 5, 50] * m)[:m].astype(np.uint16)
    write_ply(folder / f"{name}_vh_clean_2.labels.ply", rng.random((m, 3)), None, {"label": nyu})
    seg = np.arange(n) // 10 * 10  # three segments: 0, 10, 20
    (folder / f"{name}_vh_clean_2.0.010000.segs.json").write_text(
        json.dumps({"segIndices": seg.tolist()})
    )
    groups = [{"objectId": 0, "label": "chair", "segments": [10]},
              {"objectId": 1, "label": "wall", "segments": [20, 999] if bad_segment else [20]}]  # fmt: skip
    (folder / f"{name}.aggregation.json").write_text(json.dumps({"segGroups": groups}))
    return folder


def test_scannet_scene_reader(tmp_path):
    folder = _scannet_scene(tmp_path)
    stats = {}
    cloud = read_scannet_scene(folder, stats=stats)
    assert len(cloud) == 30 and cloud.rgb.dtype == np.float32
    assert cloud.labels[:4].tolist() == [0, 1, 4, 255]
    assert stats["unknown_labels"] == 7  # nyu40 50 (ScanNet's known bug) counted, sent to ignore
    assert cloud.instances.tolist() == [0] * 10 + [1] * 10 + [2] * 10


def test_scannet_count_mismatch_names_both_files(tmp_path):  # F15 / D12
    folder = _scannet_scene(tmp_path, labels_n=31)
    with pytest.raises(
        DatasetFormatError, match=r"labels\.ply has 31 vertices but .*_vh_clean_2\.ply has 30"
    ):
        read_scannet_scene(folder)


def test_scannet_aggregation_segment_missing(tmp_path):
    folder = _scannet_scene(tmp_path, bad_segment=True)
    with pytest.raises(
        DatasetFormatError, match=r"objectId 1, 'wall'\) refers to 1 segment ids missing .*\[999\]"
    ):
        read_scannet_scene(folder)


def test_scannet_missing_labels_is_error_only_for_training(tmp_path):  # F6
    folder = _scannet_scene(tmp_path)
    (folder / "scene0001_00_vh_clean_2.labels.ply").unlink()
    assert read_scannet_scene(folder).labels is None
    with pytest.raises(DatasetFormatError, match=r"missing scene0001_00_vh_clean_2.labels.ply"):
        read_scannet_scene(folder, require_labels=True)


def test_label_tsv(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text(
        "id\traw_category\tcategory\tcount\tnyu40id\n1\tchair\tchair\t5\t5\n2\tcouch\tsofa\t3\t6\n"
    )
    assert read_label_tsv(path) == {"chair": 5, "couch": 6}
    path.write_text("id\traw_category\n1\tchair\n")
    with pytest.raises(DatasetFormatError, match="missing columns"):
        read_label_tsv(path)


def test_s3dis_room_and_control_character(tmp_path):
    ann = tmp_path / "Area_1" / "office_1" / "Annotations"
    ann.mkdir(parents=True)
    (ann / "chair_1.txt").write_text("0 0 0 10 20 30\n1 1 1 40 50 60\n")
    (ann / "stairs_1.txt").write_text("2 2 2 0 0 0\n")
    cloud = read_s3dis_room(ann.parent)
    assert cloud.labels.tolist() == [8, 8, IGNORE_LABEL] and cloud.instances.tolist() == [1, 1, 2]
    np.testing.assert_allclose(cloud.rgb[0], [10 / 255, 20 / 255, 30 / 255], rtol=1e-6)
    (ann / "chair_1.txt").write_bytes(b"0 0 0 10 20 30\n103.0\x100000 1 1 40 50 60\n")
    with pytest.raises(
        PointCloudReadError, match=r"chair_1\.txt: line 2: cannot parse '103\.0\\x100000'"
    ):
        read_s3dis_room(ann.parent)
    (ann / "chair_1.txt").write_text("0 0 0 10 20 300\n")
    with pytest.raises(PointCloudReadError, match=r"not 0..255"):
        read_s3dis_room(ann.parent)


def test_synthia_windows(tmp_path):
    paths = []
    for f in range(4):
        path = tmp_path / "SEQ" / "Stereo_Left" / f"{f:06d}.ply"
        write_ply(path, np.full((2, 3), 100.0 * f), np.zeros((2, 3), np.uint8), {"label": np.array([8, 1])},
                  color_names=("r", "g", "b"))  # fmt: skip
        paths.append(path)
    windows = temporal_windows(paths, length=3, dilation=1)
    assert len(windows) == 2 and temporal_windows(paths, 2, 2) == [
        [paths[0], paths[2]],
        [paths[1], paths[3]],
    ]
    window = read_window(windows[1])
    assert window.xyzt[:, 3].tolist() == [0, 0, 1, 1, 2, 2]
    assert window.xyzt[0, 0] == 100.0 and window.labels.tolist() == [6, 255] * 3


def test_generic_folder_listing(tmp_path):
    from stseg_data.io import list_scene_files

    write_ply(tmp_path / "b" / "x.ply", np.zeros((2, 3)))
    write_ply(tmp_path / "a.ply", np.zeros((2, 3)))
    (tmp_path / "notes.txt").write_text("hi")
    assert list_scene_files(tmp_path) == [tmp_path / "a.ply", tmp_path / "b" / "x.ply"]
    with pytest.raises(PointCloudReadError, match="no scene files"):
        list_scene_files(tmp_path / "b", (".npz",))


def test_numpy_scene_files(tmp_path):
    xyz = np.random.default_rng(0).random((5, 3))
    np.savez(
        tmp_path / "a.npz", coord=xyz, color=np.full((5, 3), 255, np.uint8), segment=np.arange(5)
    )
    cloud = read_scene(tmp_path / "a.npz")
    assert cloud.labels.tolist() == [0, 1, 2, 3, 4] and np.allclose(cloud.rgb, 1.0)
    np.savez(tmp_path / "b.npz", coord=xyz, segment=np.arange(6))
    with pytest.raises(
        PointCloudReadError, match="'segment' has 6 entries but 'coord' has 5 points"
    ):
        read_scene(tmp_path / "b.npz")
    np.save(tmp_path / "c.npy", np.column_stack([xyz, np.full((5, 3), 0.5), np.ones(5)]))
    assert read_scene(tmp_path / "c.npy").labels.tolist() == [1] * 5
    np.save(tmp_path / "d.npy", np.array([object()], dtype=object))
    with pytest.raises(PointCloudReadError, match="cannot read numpy file"):
        read_scene(tmp_path / "d.npy")
    (tmp_path / "e.xyz").write_text("0 0 0\n")
    with pytest.raises(PointCloudReadError, match=r"unsupported file type '.xyz'"):
        read_scene(tmp_path / "e.xyz")


def test_ssen_pt_round_trip_and_pickle_refused(tmp_path):
    torch = pytest.importorskip("torch")
    from stseg_data.pointcloud import PointCloud
    from stseg_data.ssen import write_ssen_pt

    cloud = PointCloud(np.random.default_rng(0).random((6, 3)), np.full((6, 3), 0.5), np.array([0, 1, 255, 3, 4, 5]),
                       np.array([-1, 1, 1, 2, 2, 2]))  # fmt: skip
    write_ssen_pt(tmp_path / "s_semantic_segment.pt", cloud)
    back = read_scene(tmp_path / "s_semantic_segment.pt")
    assert back.labels.tolist() == [0, 1, 255, 3, 4, 5] and back.instances.tolist() == [
        -1,
        1,
        1,
        2,
        2,
        2,
    ]
    torch.save(torch.zeros(4, 5), tmp_path / "bad.pt")
    with pytest.raises(PointCloudReadError, match=r"expected a tensor \[N, 9\]"):
        read_scene(tmp_path / "bad.pt")

    sentinel = tmp_path / "pwned"

    class Gadget:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    torch.save({"x": Gadget()}, tmp_path / "evil.pt")
    with pytest.raises(
        UnsafeFileError, match=r"refused: not a safe \.pt data file.*io\.open"
    ) as info:
        read_scene(tmp_path / "evil.pt")
    assert "weights_only" not in str(info.value)
    assert not sentinel.exists()  # E1: the pickle gadget never ran


def test_split_entries_escaping_root_are_refused(tmp_path):  # F28 / E3
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "train" / "a.ply").write_text("x")
    outside = tmp_path / "secret.ply"
    outside.write_text("x")
    os.symlink(outside, root / "train" / "link.ply")
    split = tmp_path / "train.txt"
    split.write_text("# comment\ntrain/a.ply\n\n")
    assert read_split(split, root) == [root / "train" / "a.ply"]
    opened = []
    real_open = open

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    for entry, message in (("../secret.ply", "contains '..'"), ("/etc/passwd", "absolute path"),
                           ("train/link.ply", "outside the dataset root"), ("train/b.ply", "does not exist")):  # fmt: skip
        split.write_text(f"train/a.ply\n{entry}\n")
        builtins = sys.modules["builtins"]
        builtins.open = spy
        try:
            with pytest.raises(
                SplitFileError, match=rf"train\.txt: line 2: entry '{entry}'.*{message}"
            ):
                read_split(split, root)
        finally:
            builtins.open = real_open
        assert not any("secret" in p or "passwd" in p for p in opened)
    split.write_bytes(b"train/a.ply\n\xff\xfe\n")
    with pytest.raises(SplitFileError, match="line 2: not UTF-8"):
        read_split(split, root)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"0 0 0 1 2 3\n1 1", r"line 2: expected 6 values, found 2"),  # truncated mid-line
        (b"", r"0 points"),
        (b"0 0 0 1 2 3\nnan 0 0 1 2 3\n", r"1 non-finite coordinates, first at point 1"),
        (b"0 0 0 1 2 3.5\n", r"not 0\.\.255 integers"),
    ],
)
def test_s3dis_bad_files(tmp_path, content, message):
    ann = tmp_path / "Area_2" / "room_1" / "Annotations"
    ann.mkdir(parents=True)
    (ann / "table_1.txt").write_bytes(content)
    with pytest.raises((PointCloudReadError, DatasetFormatError), match=message):
        read_s3dis_room(ann.parent)
