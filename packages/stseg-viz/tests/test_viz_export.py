"""Coloured PLY export: read the file back and compare colours and fields; label file formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stseg_data.labels import scannet20_to_nyu40
from stseg_data.ply import read_ply, read_ply_elements, write_ply
from stseg_viz.colorize import (
    CORRECT_COLOR,
    WRONG_COLOR,
    colorize_embeddings,
    colorize_instances,
)
from stseg_viz.errors import LabelFileError, PaletteError, VizInputError
from stseg_viz.export import export_colored_ply
from stseg_viz.inputs import load_embeddings, load_labels
from stseg_viz.palettes import SCANNET20_COLORS


def _rgb255(path: Path) -> np.ndarray:
    _, elements = read_ply_elements(path)
    vertex = elements["vertex"]
    return np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1)


def test_export_rgb_round_trips_colours_and_keeps_fields(room: dict, tmp_path: Path) -> None:
    out = tmp_path / "rgb.ply"
    export_colored_ply(room["scene"], out, color_by="rgb")
    back = read_ply(out)
    cloud = room["cloud"]
    assert np.allclose(back.xyz, cloud.xyz, atol=1e-5)
    assert np.array_equal(_rgb255(out), np.round(cloud.rgb * 255).astype(np.uint8))
    assert np.array_equal(back.labels, cloud.labels)
    assert np.array_equal(back.instances, cloud.instances)


def test_export_label_colours_are_the_palette(room: dict, tmp_path: Path) -> None:
    out = tmp_path / "label.ply"
    coloring = export_colored_ply(room["scene"], out, color_by="label")
    assert np.array_equal(_rgb255(out), SCANNET20_COLORS[room["cloud"].labels])
    assert [name for name, _, _ in coloring.legend][:3] == ["wall", "floor", "cabinet"]


def test_export_prediction_and_errors(room: dict, tmp_path: Path) -> None:
    out = tmp_path / "pred.ply"
    export_colored_ply(room["scene"], out, color_by="label", labels=room["pred"])
    assert np.array_equal(_rgb255(out), SCANNET20_COLORS[room["pred_labels"]])
    _, elements = read_ply_elements(out)
    assert np.array_equal(elements["vertex"]["pred"], room["pred_labels"])

    out = tmp_path / "errors.ply"
    export_colored_ply(room["scene"], out, color_by="error", labels=room["pred"])
    right = room["pred_labels"] == room["cloud"].labels
    colors = _rgb255(out)
    assert (colors[right] == CORRECT_COLOR).all() and (colors[~right] == WRONG_COLOR).all()


def test_export_instances(room: dict, tmp_path: Path) -> None:
    out = tmp_path / "inst.ply"
    export_colored_ply(room["scene"], out, color_by="instance")
    assert np.array_equal(_rgb255(out), colorize_instances(room["cloud"].instances))


def test_labels_from_txt_npy_and_ply_agree(tmp_path: Path) -> None:
    labels = np.array([0, 3, 255, 19, 7])
    (tmp_path / "l.txt").write_text("0\n3\n255\n19\n7\n")
    np.save(tmp_path / "l.npy", labels.astype(np.int32))
    write_ply(tmp_path / "l.ply", np.zeros((5, 3)), extra={"label": labels.astype(np.int32)})
    for name in ("l.txt", "l.npy", "l.ply"):
        assert load_labels(tmp_path / name, 5).tolist() == labels.tolist()


def test_bad_label_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "short.txt").write_text("1\n2\n")
    with pytest.raises(
        LabelFileError, match=r"short\.txt: has 2 labels but the scene has 5 points"
    ):
        load_labels(tmp_path / "short.txt", 5)
    (tmp_path / "words.txt").write_text("1\nchair\n")
    with pytest.raises(LabelFileError, match=r"words\.txt: labels must be integers"):
        load_labels(tmp_path / "words.txt", 2)
    np.save(tmp_path / "float.npy", np.array([0.5, 1.0]))
    with pytest.raises(LabelFileError, match=r"float\.npy: labels must be integers"):
        load_labels(tmp_path / "float.npy", 2)
    write_ply(tmp_path / "nolabel.ply", np.zeros((2, 3)))
    with pytest.raises(LabelFileError, match=r"nolabel\.ply: no label field"):
        load_labels(tmp_path / "nolabel.ply", 2)
    with pytest.raises(LabelFileError, match=r"missing\.txt: no such labels file"):
        load_labels(tmp_path / "missing.txt", 2)


def test_missing_values_for_a_mode_are_explained(tmp_path: Path) -> None:
    scene = tmp_path / "bare.ply"
    write_ply(scene, np.random.default_rng(0).uniform(size=(10, 3)))
    with pytest.raises(VizInputError, match=r"bare\.ply: has no colour"):
        export_colored_ply(scene, tmp_path / "o.ply", color_by="rgb")
    with pytest.raises(VizInputError, match=r"bare\.ply: has no semantic labels"):
        export_colored_ply(scene, tmp_path / "o.ply", color_by="label")
    with pytest.raises(VizInputError, match="needs the prediction as --labels"):
        export_colored_ply(scene, tmp_path / "o.ply", color_by="error")
    assert not (tmp_path / "o.ply").exists()


def test_export_embeddings_as_pca_colours(room: dict, tmp_path: Path) -> None:
    emb = np.c_[room["cloud"].instances, np.zeros(len(room["cloud"]))].astype(np.float32)
    np.save(tmp_path / "emb.npy", emb)
    out = tmp_path / "emb.ply"
    export_colored_ply(room["scene"], out, color_by="embedding", embeddings=tmp_path / "emb.npy")
    assert np.array_equal(_rgb255(out), colorize_embeddings(emb))
    # Points of one instance share one colour (the embedding is constant per instance).
    colors = _rgb255(out)
    for instance in np.unique(room["cloud"].instances):
        assert len(np.unique(colors[room["cloud"].instances == instance], axis=0)) == 1


def test_bad_embedding_files(tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.zeros(4))
    with pytest.raises(LabelFileError, match=r"flat\.npy: embeddings must be a numeric \[N, D\]"):
        load_embeddings(tmp_path / "flat.npy", 4)
    np.save(tmp_path / "few.npy", np.zeros((3, 2)))
    with pytest.raises(LabelFileError, match=r"few\.npy: has 3 embeddings but the scene has 4"):
        load_embeddings(tmp_path / "few.npy", 4)
    np.save(tmp_path / "nan.npy", np.full((4, 2), np.nan))
    with pytest.raises(LabelFileError, match=r"nan\.npy: embeddings contain NaN"):
        load_embeddings(tmp_path / "nan.npy", 4)


def test_nyu40_predictions_are_converted_to_scannet20(room: dict, tmp_path: Path) -> None:
    # A ScanNet checkpoint's `predict` writes NYU40 ids; the scene holds training ids.
    nyu = scannet20_to_nyu40(room["pred_labels"])
    np.save(tmp_path / "nyu.npy", nyu)
    out = tmp_path / "nyu.ply"
    export_colored_ply(
        room["scene"], out, color_by="error", labels=tmp_path / "nyu.npy", label_ids="nyu40"
    )
    right = room["pred_labels"] == room["cloud"].labels
    assert (_rgb255(out)[right] == CORRECT_COLOR).all() and (
        _rgb255(out)[~right] == WRONG_COLOR
    ).all()
    np.save(
        tmp_path / "toilets.npy", np.full(len(nyu), 33)
    )  # NYU40 toilet; 1..19 would be ambiguous
    with pytest.raises(PaletteError, match="NYU40 ids\\? pass --label-ids nyu40"):
        export_colored_ply(room["scene"], out, color_by="label", labels=tmp_path / "toilets.npy")
    with pytest.raises(VizInputError, match="use it with --palette scannet20"):
        export_colored_ply(room["scene"], out, color_by="label", labels=tmp_path / "nyu.npy",
                           label_ids="nyu40", palette="s3dis")  # fmt: skip
    # Raw NYU40 ids in the scene itself (ScanNet *.labels.ply): NYU40 classes outside the 20 are ignored.
    raw = tmp_path / "raw.ply"
    write_ply(
        raw,
        np.zeros((3, 3)) + np.arange(3)[:, None],
        extra={"label": np.array([1, 22, 33], np.int32)},
    )
    coloring = export_colored_ply(
        raw, tmp_path / "o.ply", color_by="label", scene_label_ids="nyu40"
    )
    assert [name for name, _, _ in coloring.legend] == ["wall", "toilet", "ignored"]
