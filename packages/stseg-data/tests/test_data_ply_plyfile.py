"""The plyfile-based PLY reader/writer against plyfile itself, and the cases plyfile leaves to us.

plyfile (read without our checks, no memory map) is the slow obvious reference for every column;
files plyfile writes must read back through `read_ply_elements`, and files we write must read
back through plyfile.
"""

import gc

import numpy as np
import plyfile
import pytest

from stseg_data.errors import PointCloudReadError, StsegInputError
from stseg_data.inspect import describe_file
from stseg_data.ply import read_ply, read_ply_elements, write_ply


def _scene(n=40, seed=1):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    extra = {
        "label": rng.integers(0, 21, n).astype(np.uint16),
        "instance": rng.integers(-5, 9, n).astype(np.int32),
        "weight": rng.random(n),
    }
    faces = rng.integers(0, n, size=(7, 3))
    return xyz, rgb, extra, faces


@pytest.mark.parametrize(
    "fmt", [dict(binary=True), dict(binary=True, byte_order=">"), dict(binary=False)]
)
def test_every_column_equals_plyfile_reference(tmp_path, fmt):
    xyz, rgb, extra, faces = _scene()
    path = tmp_path / "s.ply"
    write_ply(path, xyz, rgb, extra, faces=faces, comments=("made by a test",), **fmt)
    header, ours = read_ply_elements(path)
    reference = plyfile.PlyData.read(str(path), mmap=False)
    assert [e.name for e in header.elements] == ["vertex", "face"]
    assert header.comments == ["made by a test"]
    for name in ("x", "y", "z", "red", "green", "blue", "label", "instance", "weight"):
        column = ours["vertex"][name]
        expected = reference["vertex"].data[name]
        assert column.dtype == expected.dtype.newbyteorder("=")
        assert column.dtype.isnative
        np.testing.assert_array_equal(column, expected)
    np.testing.assert_array_equal(
        ours["face"]["vertex_indices"], np.stack(reference["face"].data["vertex_indices"])
    )
    np.testing.assert_array_equal(ours["face"]["vertex_indices"], faces)
    np.testing.assert_array_equal(ours["vertex"]["weight"], extra["weight"])


def test_files_written_by_plyfile_read_back(tmp_path):
    table = np.zeros(5, dtype=[("x", "f8"), ("y", "f8"), ("z", "f8"), ("r", "u2"), ("g", "u2"),
                               ("b", "u2"), ("semantic", "i1")])  # fmt: skip
    table["x"] = np.arange(5)
    table["r"] = [0, 65535, 1, 2, 3]
    table["semantic"] = [-1, 0, 1, 2, 3]
    for text in (False, True):
        path = tmp_path / f"p{text}.ply"
        plyfile.PlyData([plyfile.PlyElement.describe(table, "vertex")], text=text).write(str(path))
        cloud = read_ply(path)
        np.testing.assert_array_equal(cloud.xyz[:, 0], np.arange(5))
        np.testing.assert_allclose(cloud.rgb[:2, 0], [0.0, 1.0])
        assert cloud.labels.tolist() == [-1, 0, 1, 2, 3]


def test_returned_arrays_do_not_hold_the_memory_map(tmp_path):
    xyz, rgb, extra, _ = _scene(100)
    path = tmp_path / "s.ply"
    write_ply(path, xyz, rgb, extra)
    _, elements = read_ply_elements(path)
    columns = elements["vertex"]
    gc.collect()
    for column in columns.values():
        assert type(column) is np.ndarray and column.flags.owndata and column.flags.writeable
    before = columns["x"].copy()
    path.write_bytes(b"overwritten")  # a mapped file would change under us (or fail on Windows)
    path.unlink()
    np.testing.assert_array_equal(columns["x"], before)


def test_binary_variable_length_list_is_one_clear_error(tmp_path):
    head = (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\n"
            b"property float y\nproperty float z\nelement face 2\n"
            b"property list uchar int vertex_indices\nend_header\n")  # fmt: skip
    body = np.zeros(3, "<f4").tobytes()
    body += bytes([3]) + np.zeros(3, "<i4").tobytes() + bytes([2]) + np.zeros(3, "<i4").tobytes()
    path = tmp_path / "v.ply"
    path.write_bytes(head + body)
    with pytest.raises(
        PointCloudReadError, match="row 1: list 'vertex_indices' has 2 items, expected 3 like row 0"
    ):
        read_ply_elements(path)


def test_ascii_variable_length_lists_go_through_plyfile(tmp_path):
    head = (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
            b"property float z\nelement face 2\nproperty list uchar int vertex_indices\n"
            b"end_header\n")  # fmt: skip
    path = tmp_path / "v.ply"
    path.write_bytes(head + b"0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n4 0 1 2 0\n")
    _, elements = read_ply_elements(path)
    faces = elements["face"]["vertex_indices"]
    assert faces.dtype == object and [f.tolist() for f in faces] == [[0, 1, 2], [0, 1, 2, 0]]
    np.testing.assert_array_equal(elements["vertex"]["x"], [0, 1, 0])
    path.write_bytes(head + b"0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n4 0 1 x 0\n")
    with pytest.raises(PointCloudReadError, match="line 14: bad row property 'vertex_indices'"):
        read_ply_elements(path)


def test_ascii_blank_lines_skipped_and_counted_in_line_numbers(tmp_path):
    head = b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
    head += b"property float z\nproperty uchar red\nend_header\n"
    path = tmp_path / "b.ply"
    path.write_bytes(head + b"\n0 0 0 1\n\n1 1 1 2\n\n")
    _, elements = read_ply_elements(path)
    assert elements["vertex"]["red"].tolist() == [1, 2]
    path.write_bytes(head + b"\n0 0 0 1\n\n1 1 1 256\n")
    with pytest.raises(PointCloudReadError, match=r"line 12 \(row 1\): property 'red' value 256"):
        read_ply(path)
    path.write_bytes(head + b"0 0 0 1\n1 1 1 2.5\n")
    with pytest.raises(PointCloudReadError, match=r"line 10 \(row 1\): property 'red' value 2.5"):
        read_ply(path)


def test_ascii_huge_count_rejected_before_allocating(tmp_path):
    head = b"ply\nformat ascii 1.0\nelement vertex 4000000000\nproperty float x\n"
    path = tmp_path / "h.ply"
    path.write_bytes(head + b"property float y\nproperty float z\nend_header\n0 0 0\n")
    with pytest.raises(PointCloudReadError, match="declares 4000000000 rows but only 1 data lines"):
        read_ply(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"element vertex -3\nproperty float x\n", "negative count -3"),
        (b"element face 1\nproperty list float int v\n", "list count type must be an integer"),
        (b"element vertex 1\nproperty float x\nproperty float x\n", "two properties with same"),
        (b"element vertex 1\nproperty float x y\n", "header line 4"),
        (b"element vertex 1\nproperty float \xe9\n", "bad PLY header"),
    ],
)
def test_header_cases_plyfile_accepts_or_raises_otherwise(tmp_path, header, message):
    path = tmp_path / "h.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\n" + header + b"end_header\n0\n")
    with pytest.raises(PointCloudReadError, match=message):
        read_ply_elements(path)


def test_header_window_limits_garbage_without_end_header(tmp_path):
    path = tmp_path / "g.ply"
    path.write_bytes(b"ply\n" + b"comment " + b"x" * (3 << 20))
    with pytest.raises(PointCloudReadError, match="no 'end_header'"):
        read_ply(path)


def test_writer_rejects_names_plyfile_cannot_store(tmp_path):
    with pytest.raises(StsegInputError, match="space"):
        write_ply(tmp_path / "a.ply", np.zeros((2, 3)), extra={"bad name": np.zeros(2)})
    with pytest.raises(StsegInputError, match="newline"):
        write_ply(tmp_path / "a.ply", np.zeros((2, 3)), comments=("two\nlines",))
    assert not list(tmp_path.iterdir())


def test_inspect_lists_header_from_plyfile(tmp_path):
    xyz, rgb, extra, faces = _scene(10)
    path = tmp_path / "s.ply"
    write_ply(path, xyz, rgb, extra, faces=faces, comments=("hello",))
    text = describe_file(path)
    assert "format: binary_little_endian" in text
    assert "element vertex (10): x:f4, y:f4, z:f4, red:u1" in text
    assert "element face (7): vertex_indices:i4[list]" in text
    assert "comment: hello" in text
