"""The HTML viewer file without a browser: self-contained, and its payload decodes to the scene."""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from stseg_data.pointcloud import PointCloud
from stseg_viz.colorize import colorize_embeddings, colorize_errors
from stseg_viz.errors import VizInputError
from stseg_viz.palettes import SCANNET20_COLORS, Palette, get_palette
from stseg_viz.viewer import script_safe_json, viewer_html, write_viewer


def _payload(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="stseg-data">(.*?)</script>', html, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_viewer_is_self_contained(room: dict, tmp_path: Path) -> None:
    out = tmp_path / "v.html"
    summary = write_viewer(room["scene"], out, labels=room["pred"])
    html = out.read_text()
    assert summary["modes"] == ["rgb", "label", "instance", "error"]
    assert not re.search(r"<(script|img|link|iframe)[^>]*\s(src|href)=", html)
    assert "http://" not in html and "https://" not in html
    assert "default-src 'none'" in html  # the page may not fetch anything
    assert "__STSEG_" not in html


def test_payload_decodes_to_the_points_colours_and_groups(room: dict) -> None:
    cloud: PointCloud = room["cloud"]
    pred = room["pred_labels"]
    html, summary = viewer_html(cloud, prediction=pred, palette=get_palette("scannet20"))
    data = _payload(html)
    n = len(cloud)
    assert summary["shown"] == n
    q = np.frombuffer(base64.b64decode(data["positions"]), dtype="<u2").reshape(n, 3)
    xyz = np.array(data["qmin"]) + q / 65535 * np.array(data["qsize"])
    label = np.frombuffer(base64.b64decode(data["colors"]["label"]), np.uint8).reshape(n, 3)
    error = np.frombuffer(base64.b64decode(data["colors"]["error"]), np.uint8).reshape(n, 3)
    # Points are reordered by predicted class (stable), so each class is one draw range.
    order = np.argsort(pred, kind="stable")
    step = np.array(data["qsize"]) / 65535
    assert (np.abs(xyz - cloud.xyz[order]) <= step / 2 + 1e-9).all()  # 16-bit quantisation
    assert np.array_equal(label, SCANNET20_COLORS[pred][order])
    assert np.array_equal(error, colorize_errors(pred, cloud.labels)[order])
    # Groups: contiguous ranges covering all points, one per predicted class, in class order.
    groups = data["groups"]
    assert [g["key"] for g in groups] == sorted(set(pred.tolist()))
    assert groups[0]["start"] == 0 and sum(g["count"] for g in groups) == n
    for a, b in itertools.pairwise(groups):
        assert a["start"] + a["count"] == b["start"]
    assert groups[0]["name"] == "wall" and groups[0]["color"] == list(SCANNET20_COLORS[0])


def test_large_scenes_are_subsampled_and_modes_follow_the_data(room: dict) -> None:
    cloud: PointCloud = room["cloud"]
    bare = PointCloud(xyz=cloud.xyz)
    html, summary = viewer_html(bare, palette=get_palette("scannet20"), max_points=100)
    data = _payload(html)
    assert summary["shown"] == 100 and "100 of 3,000 points shown" in data["note"]
    assert list(data["colors"]) == ["rgb"] and [g["key"] for g in data["groups"]] == ["all"]
    with pytest.raises(VizInputError, match="--max-points must be at least 1"):
        viewer_html(bare, palette=get_palette("scannet20"), max_points=0)


HOSTILE = ["<!--<script>", "</script><script>alert(1)</script>", "a\u2028b\u2029c", "&amp; >"]


def test_script_breaking_names_are_escaped(room: dict) -> None:
    html, _ = viewer_html(room["cloud"], palette=get_palette("scannet20"), title="</script><b>x")
    assert "</script><b>" not in html
    assert _payload(html)["title"] == "</script><b>x"


@pytest.mark.parametrize("seed", range(20))
def test_script_safe_json_round_trips_without_markup_characters(seed: int) -> None:
    rng = np.random.default_rng(seed)
    alphabet = [
        "<",
        ">",
        "&",
        "/",
        "!",
        "-",
        "\\",
        '"',
        "\u2028",
        "\u2029",
        "é",
        "\n",
        "a",
        "script",
    ]
    words = ["".join(rng.choice(alphabet, int(rng.integers(0, 12)))) for _ in range(8)]
    payload = {"title": words[0], "nested": [{"name": w, "n": i} for i, w in enumerate(words)],
               words[1]: HOSTILE}  # fmt: skip
    text = script_safe_json(payload)
    assert json.loads(text) == payload
    for char in ("<", ">", "&", "\u2028", "\u2029"):
        assert char not in text


def test_hostile_title_and_class_names_stay_inside_the_data_element(room: dict) -> None:
    names = tuple(f"{HOSTILE[i % len(HOSTILE)]} {i}" for i in range(20))
    palette = Palette("hostile", SCANNET20_COLORS, names)
    html, _ = viewer_html(room["cloud"], palette=palette, title=HOSTILE[0] + HOSTILE[1])
    # The data element holds no "<" at all: nothing in it can close it or open a comment.
    data = html.split('id="stseg-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and len(data) > 1000
    assert html.count("</script>") == 2 and "<!--" not in html
    payload = _payload(html)
    assert payload["title"] == HOSTILE[0] + HOSTILE[1]
    assert {group["name"] for group in payload["groups"]} <= set(names)


def test_embeddings_add_a_colouring(room: dict) -> None:
    cloud: PointCloud = room["cloud"]
    emb = np.c_[cloud.instances, cloud.xyz]
    html, summary = viewer_html(cloud, palette=get_palette("scannet20"), embeddings=emb)
    assert summary["modes"] == ["rgb", "label", "instance", "embedding"]
    colors = np.frombuffer(base64.b64decode(_payload(html)["colors"]["embedding"]), np.uint8)
    order = np.argsort(cloud.labels, kind="stable")
    assert np.array_equal(colors.reshape(-1, 3), colorize_embeddings(emb)[order])
