"""Synthetic datasets in the real formats, preprocessing (resume, bad scenes) and the CLI."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from stseg_data.cli import main
from stseg_data.errors import PreprocessError, StsegInputError
from stseg_data.io import read_scene
from stseg_data.labels import nyu40_to_scannet20
from stseg_data.preprocess import preprocess
from stseg_data.scannet import read_label_tsv, read_scannet_scene
from stseg_data.synth import write_synthetic
from stseg_data.synth_scannet import generate_room


def _digest(folder):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def scannet_raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw") / "scannet"
    write_synthetic("scannet", root, scenes=2, seed=3, spacing=0.08)
    return root


def test_scannet_synthetic_layout_and_reader(scannet_raw):
    scene = scannet_raw / "scans" / "scene0000_00"
    names = {p.name for p in scene.iterdir()}
    assert names == {"scene0000_00_vh_clean_2.ply", "scene0000_00_vh_clean_2.labels.ply", "scene0000_00.txt",
                     "scene0000_00_vh_clean_2.0.010000.segs.json", "scene0000_00.aggregation.json"}  # fmt: skip
    header = (scannet_raw / "scannetv2-labels.combined.tsv").read_text().splitlines()[0].split("\t")
    assert header[:8] == [
        "id",
        "raw_category",
        "category",
        "count",
        "nyu40id",
        "eigen13id",
        "nyuClass",
        "nyu40class",
    ]
    assert read_label_tsv(scannet_raw / "scannetv2-labels.combined.tsv")["shower curtain"] == 28
    cloud = read_scannet_scene(scene, require_labels=True)
    assert len(cloud) > 1000 and cloud.rgb is not None and set(np.unique(cloud.labels)) >= {0, 1}
    aggregation = json.loads((scene / "scene0000_00.aggregation.json").read_text())
    assert len(np.unique(cloud.instances[cloud.instances > 0])) == len(aggregation["segGroups"])
    # every instance carries one semantic class
    for inst in np.unique(cloud.instances[cloud.instances > 0]):
        assert len(np.unique(cloud.labels[cloud.instances == inst])) == 1
    assert (scannet_raw / "scannetv2_train.txt").read_text() == "scene0001_00\n"
    assert (scannet_raw / "scannetv2_val.txt").read_text() == "scene0000_00\n"


def test_synthetic_rooms_cover_all_20_classes_and_are_deterministic():
    seen = set()
    for i in range(5):
        arrays, _, _ = generate_room(np.random.default_rng([0, i, 1]), i, spacing=0.1)
        seen |= set(nyu40_to_scannet20(arrays["label"]).tolist())
    assert set(range(20)) <= seen
    a, _, _ = generate_room(np.random.default_rng([0, 7, 1]), 7, spacing=0.1)
    b, _, _ = generate_room(np.random.default_rng([0, 7, 1]), 7, spacing=0.1)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_synthetic_is_deterministic_per_seed(tmp_path):
    write_synthetic("synthia4d", tmp_path / "a", scenes=1, seed=5, frames=2, spacing=0.6)
    write_synthetic("synthia4d", tmp_path / "b", scenes=1, seed=5, frames=2, spacing=0.6)
    write_synthetic("synthia4d", tmp_path / "c", scenes=1, seed=6, frames=2, spacing=0.6)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    frame = read_scene(tmp_path / "a" / "SYNTHIA-SEQS-00-SUMMER" / "Stereo_Left" / "000001.ply")
    assert np.abs(frame.xyz).max() > 500  # centimetres
    assert set(np.unique(frame.labels)) <= {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15}


def test_preprocess_scannet_resume_and_splits(scannet_raw, tmp_path):
    out = tmp_path / "pre"
    report = preprocess("scannet", scannet_raw, out, workers=1)
    assert len(report.written) == 2 and not report.failed
    assert (out / "train.txt").read_text() == "train/scene0001_00.ply\n"
    assert (out / "val.txt").read_text() == "train/scene0000_00.ply\n"
    cloud = read_scene(out / "train" / "scene0000_00.ply")
    raw = read_scannet_scene(scannet_raw / "scans" / "scene0000_00")
    np.testing.assert_array_equal(cloud.labels, raw.labels)
    np.testing.assert_array_equal(cloud.instances, raw.instances)
    np.testing.assert_allclose(cloud.xyz, raw.xyz, atol=1e-6)
    again = preprocess("scannet", scannet_raw, out, resume=True)
    assert again.written == [] and len(again.skipped) == 2
    assert again.summary() == "0 written, 2 already done, 0 failed"


def test_preprocess_bad_scene_reported_others_kept(scannet_raw, tmp_path):
    raw = tmp_path / "raw"
    subprocess.run(["cp", "-r", str(scannet_raw), str(raw)], check=True)
    mesh = raw / "scans" / "scene0001_00" / "scene0001_00_vh_clean_2.ply"
    mesh.write_bytes(mesh.read_bytes()[:-100])  # truncated
    out = tmp_path / "pre"
    (out / "train").mkdir(parents=True)
    (out / "train" / "scene0001_00.ply.keep").write_text("")
    with pytest.raises(
        PreprocessError, match=r"1 written, 1 failed.*scene0001_00: .*truncated"
    ) as info:
        preprocess("scannet", raw, out, overwrite=True)
    assert info.value.report.written == ["scene0000_00"]
    assert not (out / "train" / "scene0001_00.ply").exists()
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "scene0000_00.ply",
        "scene0001_00.ply.keep",
    ]


@pytest.mark.slow
def test_preprocess_parallel_s3dis_and_synthia(tmp_path):
    write_synthetic("s3dis", tmp_path / "s3dis", scenes=2, seed=0, spacing=0.15)
    report = preprocess("s3dis", tmp_path / "s3dis", tmp_path / "s3dis_pre", workers=2)
    assert len(report.written) == 2
    cloud = read_scene(tmp_path / "s3dis_pre" / "Area_1" / "office_1.ply")
    assert cloud.labels.max() <= 12 and {0, 1, 2, 3, 4} <= set(cloud.labels.tolist())
    write_synthetic("synthia4d", tmp_path / "syn", scenes=1, seed=0, frames=2, spacing=0.6)
    report = preprocess("synthia4d", tmp_path / "syn", tmp_path / "syn_pre", workers=2)
    assert len(report.written) == 2
    frame = read_scene(
        tmp_path / "syn_pre" / "SYNTHIA-SEQS-00-SUMMER" / "Stereo_Left" / "000000.ply"
    )
    assert set(frame.labels.tolist()) <= set(range(12))


def test_bad_arguments():
    with pytest.raises(StsegInputError, match="unknown dataset kind"):
        write_synthetic("kitti", "/tmp/x", 1)
    with pytest.raises(StsegInputError, match="at least 1"):
        write_synthetic("scannet", "/tmp/x", 0)


def test_cli_exit_codes(tmp_path, scannet_raw):
    runner = CliRunner()
    ok = runner.invoke(
        main,
        [
            "inspect",
            str(scannet_raw / "scans" / "scene0000_00" / "scene0000_00_vh_clean_2.labels.ply"),
        ],
    )
    assert ok.exit_code == 0 and "element vertex" in ok.output and "labels: " in ok.output
    bad = tmp_path / "bad.ply"
    bad.write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nend_header\n\x00"
    )
    result = runner.invoke(main, ["inspect", str(bad)])
    assert (
        result.exit_code == 2
        and result.output.count("\n") == 1
        and "bad.ply: truncated" in result.output
    )
    result = runner.invoke(
        main, ["preprocess", "scannet", str(tmp_path / "nothing"), str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "does not exist" in result.output
    raw = tmp_path / "raw"
    subprocess.run(["cp", "-r", str(scannet_raw), str(raw)], check=True)
    (raw / "scans" / "scene0000_00" / "scene0000_00_vh_clean_2.labels.ply").write_bytes(b"garbage")
    result = runner.invoke(main, ["preprocess", "scannet", str(raw), str(tmp_path / "o")])
    assert result.exit_code == 1 and "1 failed" in result.output and "bad magic" in result.output


def test_cli_entry_point_runs_without_torch(tmp_path):
    code = "import sys, stseg_data.cli, stseg_data.dataset, stseg_data.preprocess; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    result = subprocess.run([sys.executable, "-m", "stseg_data", "synth", "s3dis", str(tmp_path / "s"), "--scenes", "1",
                             "--spacing", "0.2"], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s" / "s3dis_val.txt").read_text() == "Area_1/office_1\n"
