"""PLY reader/writer: round trips in all formats and every bad-input case of RELIABILITY D1-D13."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stseg_data.errors import PointCloudReadError, StsegInputError
from stseg_data.ply import read_ply, read_ply_elements, write_ply

FORMATS = [
    pytest.param(dict(binary=True, byte_order="<"), id="binary_le"),
    pytest.param(dict(binary=True, byte_order=">"), id="binary_be"),
    pytest.param(dict(binary=False), id="ascii"),
]


def _cloud(n=50, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    labels = rng.integers(0, 41, size=n)
    return xyz, rgb, labels


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_all_formats(tmp_path, fmt):
    xyz, rgb, labels = _cloud()
    path = tmp_path / "a.ply"
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    write_ply(path, xyz, rgb, {"label": labels, "instance": labels * 3}, faces=faces, **fmt)
    cloud = read_ply(path)
    np.testing.assert_array_equal(cloud.xyz, xyz.astype(np.float64))
    np.testing.assert_allclose(cloud.rgb, rgb / 255.0, atol=1e-7)
    np.testing.assert_array_equal(cloud.labels, labels)
    np.testing.assert_array_equal(cloud.instances, labels * 3)
    _, elements = read_ply_elements(path)
    np.testing.assert_array_equal(elements["face"]["vertex_indices"], faces)


def test_float_rgb_written_as_uchar_and_normalised_back(tmp_path):
    xyz, _, _ = _cloud(10)
    rgb = np.linspace(0, 1, 30).reshape(10, 3)
    write_ply(tmp_path / "a.ply", xyz, rgb)
    np.testing.assert_allclose(read_ply(tmp_path / "a.ply").rgb, rgb, atol=0.5 / 255 + 1e-7)


def _header(n, props, fmt="binary_little_endian"):
    lines = ["ply", f"format {fmt} 1.0", f"element vertex {n}"]
    lines += [f"property {t} {name}" for t, name in props]
    return ("\n".join([*lines, "end_header"]) + "\n").encode()


XYZ_RGB = [
    ("float", "x"),
    ("float", "y"),
    ("float", "z"),
    ("uchar", "red"),
    ("uchar", "green"),
    ("uchar", "blue"),
]


def _binary_file(tmp_path, n=20):
    xyz, rgb, labels = _cloud(n)
    path = tmp_path / "good.ply"
    write_ply(path, xyz, rgb, {"label": labels})
    return path


@pytest.mark.parametrize("cut", ["zero", "one", "half", "minus_one"])
def test_d1_truncated_binary(tmp_path, cut):
    path = _binary_file(tmp_path)
    data = path.read_bytes()
    keep = {"zero": 0, "one": 1, "half": len(data) // 2, "minus_one": len(data) - 1}[cut]
    path.write_bytes(data[:keep])
    with pytest.raises(PointCloudReadError, match=r"good.ply"):
        read_ply(path)


def test_d1_truncated_message_names_element_and_counts(tmp_path):
    path = _binary_file(tmp_path)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(
        PointCloudReadError, match=r"truncated: element 'vertex' declares 20 rows.*row 19"
    ):
        read_ply(path)


def test_d1_truncated_ascii(tmp_path):
    xyz, rgb, _ = _cloud(10)
    path = tmp_path / "a.ply"
    write_ply(path, xyz, rgb, binary=False)
    text = path.read_bytes()
    path.write_bytes(text[: text.rindex(b"\n", 0, len(text) - 1)])  # drop the last line
    with pytest.raises(PointCloudReadError, match="declares 10 rows but only 9 data lines"):
        read_ply(path)


def test_d2_bad_magic_and_missing_end_header(tmp_path):
    path = tmp_path / "a.ply"
    path.write_bytes(b"PLX\nformat ascii 1.0\n")
    with pytest.raises(PointCloudReadError, match="bad magic"):
        read_ply(path)
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n0\n")
    with pytest.raises(PointCloudReadError, match="end_header"):
        read_ply(path)


def test_d2_unknown_property_type_names_header_line(tmp_path):
    path = tmp_path / "a.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty flaot x\nend_header\n0\n")
    with pytest.raises(PointCloudReadError, match="header line 4: unknown property type 'flaot'"):
        read_ply(path)


def test_d3_trailing_garbage_binary(tmp_path):
    path = _binary_file(tmp_path)
    path.write_bytes(path.read_bytes() + b"\x00" * 7)
    with pytest.raises(PointCloudReadError, match="7 unexpected bytes after the last element"):
        read_ply(path)


def test_d3_trailing_lines_ascii(tmp_path):
    xyz, rgb, _ = _cloud(4)
    path = tmp_path / "a.ply"
    write_ply(path, xyz, rgb, binary=False)
    path.write_bytes(path.read_bytes() + b"1 2 3 4 5 6\n")
    with pytest.raises(PointCloudReadError, match=r"1 unexpected data lines.*line 15"):
        read_ply(path)


def test_d4_count_larger_and_smaller_than_data(tmp_path):
    path = _binary_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"element vertex 20", b"element vertex 21"))
    with pytest.raises(PointCloudReadError, match="truncated"):
        read_ply(path)
    path.write_bytes(data.replace(b"element vertex 20", b"element vertex 19"))
    with pytest.raises(PointCloudReadError, match="unexpected bytes"):
        read_ply(path)


def test_d5_huge_count_rejected_before_allocating(tmp_path):
    path = tmp_path / "huge.ply"
    path.write_bytes(_header(4_000_000_000, XYZ_RGB) + b"\x00" * 30)
    with pytest.raises(
        PointCloudReadError, match=r"declares 4000000000 rows of 15 bytes \(60000000000 bytes\)"
    ):
        read_ply(path)


def test_d6_bad_token_and_control_character_name_the_line(tmp_path):
    path = tmp_path / "a.ply"
    head = _header(2, XYZ_RGB, "ascii")
    path.write_bytes(head + b"0 0 0 1 2 3\n103.0\x100000 1 2 3 4 5\n")
    with pytest.raises(
        PointCloudReadError, match=r"line 12: cannot parse value 1 '103\.0\\x100000'"
    ):
        read_ply(path)
    path.write_bytes(head + b"0 0 0 1 2 3\n1 abc 2 3 4 5\n")
    with pytest.raises(PointCloudReadError, match=r"line 12.*'abc'"):
        read_ply(path)
    path.write_bytes(head + b"0 0 0 1 2 3\n1 2 3 4 5\n")
    with pytest.raises(
        PointCloudReadError, match="line 12: element 'vertex' expects 6 values, found 5"
    ):
        read_ply(path)


def test_d7_out_of_range_uchar(tmp_path):
    path = tmp_path / "a.ply"
    path.write_bytes(_header(2, XYZ_RGB, "ascii") + b"0 0 0 1 2 3\n0 0 0 300 2 3\n")
    with pytest.raises(PointCloudReadError, match=r"line 12 \(row 1\): property 'red' value 300"):
        read_ply(path)
    with pytest.raises(StsegInputError, match="rgb"):
        write_ply(tmp_path / "b.ply", np.zeros((1, 3)), np.array([[300, 0, 0]]))


def test_d8_missing_fields(tmp_path):
    path = tmp_path / "a.ply"
    path.write_bytes(_header(1, [("float", "x"), ("float", "y")], "ascii") + b"0 0\n")
    with pytest.raises(
        PointCloudReadError, match=r"missing vertex fields \['z'\]; found \['x', 'y'\], required"
    ):
        read_ply(path)
    write_ply(path, np.zeros((2, 3)))  # no colour, no label: fine, reported as None
    cloud = read_ply(path)
    assert cloud.rgb is None and cloud.labels is None
    partial = [("float", "x"), ("float", "y"), ("float", "z"), ("uchar", "red")]
    path.write_bytes(_header(1, partial, "ascii") + b"0 0 0 1\n")
    with pytest.raises(PointCloudReadError, match="incomplete colour"):
        read_ply(path)


def test_d8_float_colour_range_checked_by_dtype(tmp_path):
    props = [
        ("float", "x"),
        ("float", "y"),
        ("float", "z"),
        ("float", "red"),
        ("float", "green"),
        ("float", "blue"),
    ]
    path = tmp_path / "a.ply"
    path.write_bytes(_header(2, props, "ascii") + b"0 0 0 0.5 0.25 1\n0 0 0 0 0 0\n")
    np.testing.assert_allclose(read_ply(path).rgb[0], [0.5, 0.25, 1.0])
    path.write_bytes(_header(2, props, "ascii") + b"0 0 0 0.5 0.25 1\n0 0 0 255 0 0\n")
    with pytest.raises(PointCloudReadError, match=r"float colours must be in \[0, 1\]; row 1"):
        read_ply(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_d9_nonfinite_coordinates(tmp_path, bad):
    path = tmp_path / "a.ply"
    xyz, rgb, _ = _cloud(10)
    xyz[[3, 7], 1] = bad
    path.write_bytes(_header(10, XYZ_RGB) + _pack(xyz, rgb))
    with pytest.raises(
        PointCloudReadError, match=r"2 points with non-finite coordinates.*first at row 3"
    ):
        read_ply(path)
    cloud = read_ply(path, drop_nonfinite=True)
    assert len(cloud) == 8 and np.isfinite(cloud.xyz).all() and len(cloud.rgb) == 8
    with pytest.raises(StsegInputError, match="non-finite"):
        write_ply(tmp_path / "b.ply", xyz)


def test_d9_huge_coordinates_read_exactly(tmp_path):
    xyz = np.array([[1e30, 0, 0], [0, 1, 2]])
    write_ply(tmp_path / "a.ply", xyz)
    np.testing.assert_array_equal(read_ply(tmp_path / "a.ply").xyz, xyz)


def _pack(xyz, rgb):
    row = np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")]
    )
    table = np.empty(len(xyz), row)
    for i, c in enumerate("xyz"):
        table[c] = xyz[:, i]
    for i, c in enumerate("rgb"):
        table[c] = rgb[:, i]
    return table.tobytes()


@pytest.mark.parametrize("binary", [True, False])
def test_d10_zero_points(tmp_path, binary):
    path = tmp_path / "a.ply"
    write_ply(path, np.zeros((0, 3)), binary=binary)
    with pytest.raises(PointCloudReadError, match=r"a.ply: 0 points"):
        read_ply(path)


def test_d11_single_point_constant_colour(tmp_path):
    write_ply(
        tmp_path / "a.ply", np.ones((1, 3)), np.full((1, 3), 7, np.uint8), {"label": np.array([3])}
    )
    cloud = read_ply(tmp_path / "a.ply")
    assert len(cloud) == 1 and cloud.labels.tolist() == [3]
    np.testing.assert_allclose(cloud.rgb, 7 / 255.0)


def test_non_integer_label_field_rejected(tmp_path):
    path = tmp_path / "a.ply"
    props = [("float", "x"), ("float", "y"), ("float", "z"), ("float", "label")]
    path.write_bytes(_header(2, props, "ascii") + b"0 0 0 1\n0 0 0 1.5\n")
    with pytest.raises(PointCloudReadError, match="'label' must hold integers; row 1"):
        read_ply(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(PointCloudReadError, match="cannot read"):
        read_ply(tmp_path / "nope.ply")


def test_writer_is_atomic_and_refuses_overwrite(tmp_path):
    path = _binary_file(tmp_path)
    before = path.read_bytes()
    with pytest.raises(StsegInputError, match="already exists"):
        write_ply(path, np.zeros((1, 3)), overwrite=False)
    with pytest.raises(StsegInputError):
        write_ply(path, np.zeros((2, 3)), extra={"label": np.zeros(3)})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.ply"]


def _valid_small_ply(binary):
    import io
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.ply"
        xyz, rgb, labels = _cloud(6)
        write_ply(path, xyz, rgb, {"label": labels}, faces=np.array([[0, 1, 2]]), binary=binary)
        return io.BytesIO(path.read_bytes()).getvalue()


VALID_BINARY, VALID_ASCII = _valid_small_ply(True), _valid_small_ply(False)


@settings(
    max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    base=st.sampled_from([VALID_BINARY, VALID_ASCII]),
    edits=st.lists(
        st.tuples(st.integers(0, 10_000), st.binary(min_size=0, max_size=4), st.integers(0, 4)),
        max_size=4,
    ),
)
def test_d14_fuzzed_files_raise_only_our_error(tmp_path, base, edits):
    data = bytearray(base)
    for position, insert, delete in edits:  # splice: delete a few bytes, insert a few
        at = position % (len(data) + 1)
        data[at : at + delete] = insert
    path = tmp_path / "fuzz.ply"
    path.write_bytes(bytes(data))
    try:
        cloud = read_ply(path)
    except PointCloudReadError:
        return
    assert np.isfinite(cloud.xyz).all() and len(cloud) > 0
    assert cloud.labels is None or len(cloud.labels) == len(cloud)
