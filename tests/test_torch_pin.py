"""tools/torch_pin.py: where the CPU pin's torch comes from, and constraints/cpu.txt itself."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch_pin
from packaging.tags import Tag

ROOT = Path(__file__).resolve().parents[1]
PIN = "torch==2.13.0+cpu"
CP311 = Tag("cp311", "cp311", "manylinux_2_28_x86_64")


def test_cpu_constraints_pin_the_cpu_build() -> None:
    assert torch_pin.read_pin((ROOT / "constraints" / "cpu.txt").read_text()) == PIN


def test_reachable_index_is_added_as_extra_index() -> None:
    source = torch_pin.choose_torch_source(PIN, True, [])
    assert source.pin == PIN
    assert source.pip_args == ("--extra-index-url", "https://download.pytorch.org/whl/cpu")


def test_unreachable_index_with_local_wheel_keeps_pin_without_index() -> None:
    source = torch_pin.choose_torch_source(PIN, False, ["2.12.0+cpu", "2.13.0+cpu"])
    assert (source.pin, source.pip_args) == (PIN, ())
    assert "local wheel" in source.message


@pytest.mark.parametrize("local", [[], ["2.13.0"], ["2.12.0+cpu"], ["2.13.0+cu128"], ["junk"]])
def test_neither_falls_back_to_public_version_and_says_cuda(local: list[str]) -> None:
    source = torch_pin.choose_torch_source(PIN, False, local)
    assert (source.pin, source.pip_args) == ("torch==2.13.0", ())
    assert "unreachable" in source.message and "CUDA" in source.message


def test_pin_without_local_label_is_left_alone_and_adds_no_index() -> None:
    source = torch_pin.choose_torch_source("torch==2.13.0", True, [])
    assert (source.pin, source.pip_args) == ("torch==2.13.0", ())


def test_with_pin_replaces_only_the_torch_line() -> None:
    text = "# comment\nnumpy<3\ntorch==2.13.0+cpu  # why\n"
    assert torch_pin.with_pin(text, "torch==2.13.0") == "# comment\nnumpy<3\ntorch==2.13.0  # why\n"


def test_constraints_without_torch_line_are_refused() -> None:
    with pytest.raises(ValueError, match="torch==VERSION"):
        torch_pin.read_pin("numpy<3\ntorchvision==0.28.0\n")
    with pytest.raises(ValueError):
        torch_pin.with_pin("numpy<3\n", PIN)


def test_find_links_folders_from_pip_config_list() -> None:
    config = (
        ":env:.find-links='/opt/wheels'\n"
        "global.find-links='/opt/wheels file:///srv/w https://example.org/w'\n"
        "global.extra-index-url='file:///opt/pypi/simple'\n"
        "install.find-links='/data/wheels'\n"
    )
    assert torch_pin.find_links_folders(config) == [
        Path("/opt/wheels"),
        Path("/srv/w"),
        Path("/data/wheels"),
    ]
    assert torch_pin.find_links_folders("") == []


def test_torch_wheel_versions_keep_installable_torch_wheels_only() -> None:
    names = [
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.13.0+cpu-cp312-cp312-manylinux_2_28_x86_64.whl",  # another Python
        "torchvision-0.28.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",  # another package
        "torch-2.13.0.tar.gz",
        "not-a-wheel.whl",
    ]
    assert torch_pin.torch_wheel_versions(names, [CP311]) == ["2.13.0+cpu"]


def test_probe_fails_fast_on_an_unresolvable_host() -> None:
    start = time.monotonic()
    assert torch_pin.index_reachable("https://no-such-host.invalid/whl/cpu", timeout=2.0) is False
    assert time.monotonic() - start < 4.0


def test_probe_is_true_for_an_answering_server(tmp_path: Path) -> None:
    import functools
    import http.server

    (tmp_path / "torch").mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert torch_pin.index_reachable(url, timeout=2.0) is True
        assert torch_pin.index_reachable(f"{url}/missing", timeout=2.0) is False
    finally:
        server.shutdown()
        server.server_close()
