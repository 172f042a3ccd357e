"""The shared output rule (`stseg_data.outputs`), the umask mode of `atomic_write`, and the CLI's
one-line reports of escaped OS and memory errors (`stseg_data.cli_support`)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys

import click
import click.testing
import pytest

from stseg_data.atomic import atomic_write, current_umask
from stseg_data.cli_support import StsegGroup, is_out_of_memory, out_of_memory_line
from stseg_data.errors import StsegInputError, StsegRuntimeError
from stseg_data.outputs import (
    check_free_space,
    check_writable,
    format_bytes,
    has_content,
    nearest_existing,
    refuse_existing,
)
from stseg_data.testing import constrained_supported, error_line, run_cli

needs_tmpfs = pytest.mark.skipif(
    not constrained_supported(), reason="needs unshare -rm (private tmpfs mounts)"
)


def test_refuse_existing_file_and_nonempty_folder(tmp_path):
    refuse_existing(tmp_path / "absent.ply", overwrite=False)  # nothing there: fine
    (tmp_path / "empty").mkdir()
    refuse_existing(tmp_path / "empty", overwrite=False)  # an empty folder is not an output
    (tmp_path / "file.ply").write_bytes(b"x")
    with pytest.raises(StsegInputError, match=r"file\.ply: already exists \(pass --overwrite"):
        refuse_existing(tmp_path / "file.ply", overwrite=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / ".hidden").write_bytes(b"")
    with pytest.raises(StsegInputError, match=r"full: folder is not empty"):
        refuse_existing(tmp_path / "full", overwrite=False)
    refuse_existing(tmp_path / "full", overwrite=True)
    with pytest.raises(StsegInputError, match="use --resume"):
        refuse_existing(tmp_path / "full", overwrite=False, hint="use --resume")


def test_dangling_link_counts_as_existing(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    assert has_content(tmp_path / "link")


def test_nearest_existing_walks_up(tmp_path):
    assert nearest_existing(tmp_path / "a" / "b" / "c") == tmp_path
    assert nearest_existing(tmp_path) == tmp_path


def test_check_writable_leaves_nothing(tmp_path):
    check_writable(tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []


def test_check_writable_refuses_a_file_as_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StsegInputError, match="is a file, not a folder"):
        check_writable(tmp_path / "f" / "out")


def test_check_free_space(tmp_path):
    check_free_space(tmp_path, 1, "a file")
    with pytest.raises(StsegRuntimeError, match=r"not enough space for a checkpoint \(needs about"):
        check_free_space(tmp_path, 2**62, "a checkpoint")


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 2**20) == "3.0 MiB"
    assert format_bytes(1.5 * 2**30) == "1.5 GiB"
    assert format_bytes(5 * 2**40) == "5120.0 GiB"


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_write_gives_the_umask_mode(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        with atomic_write(tmp_path / "out.bin") as handle:
            handle.write(b"data")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == mode


def test_out_of_memory_detection():
    cpu = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: not enough memory: "
        "you tried to allocate 4294967296 bytes."
    )
    assert is_out_of_memory(cpu)
    assert "while allocating 4.0 GiB" in out_of_memory_line(cpu)
    cuda = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; ...)")
    assert "while allocating 2.00 GiB" in out_of_memory_line(cuda)
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def _group_running(action):
    @click.group(cls=StsegGroup)
    def cli() -> None:
        pass

    @cli.command()
    def go() -> None:
        action()

    return cli


def _raiser(error: BaseException):
    def action() -> None:
        raise error

    return action


@pytest.mark.parametrize(
    "error, line, code",
    [
        (
            OSError(errno.EROFS, "Read-only file system", "/data/out.ply"),
            "Error: /data/out.ply: Read-only file system, EROFS",
            1,
        ),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            "Error: a file: No space left on device, ENOSPC",
            1,
        ),
        (MemoryError(), "Error: out of memory; use smaller inputs", 1),
        (StsegInputError("scene.ply: 0 points"), "Error: scene.ply: 0 points", 2),
    ],
)
def test_cli_reports_one_line(error, line, code):
    result = click.testing.CliRunner().invoke(_group_running(_raiser(error)), ["go"])
    assert result.exit_code == code
    assert result.output.startswith(line), result.output
    assert result.output.count("\n") == 1


def test_cli_keeps_other_runtime_errors_and_debug_tracebacks():
    bug = RuntimeError("shape mismatch")
    result = click.testing.CliRunner().invoke(_group_running(_raiser(bug)), ["go"])
    assert result.exception is bug  # a bug is not dressed up as a user error
    oom = MemoryError()
    result = click.testing.CliRunner().invoke(_group_running(_raiser(oom)), ["--debug", "go"])
    assert result.exception is oom


@needs_tmpfs
def test_synth_into_read_only_folder_is_one_line(tmp_path):
    out = tmp_path / "ro"
    result = run_cli(
        [
            sys.executable,
            "-m",
            "stseg_data",
            "synth",
            "scannet",
            str(out / "data"),
            "--scenes",
            "1",
        ],
        constrained=(out, "readonly"),
    )
    assert result.returncode == 1, result.stderr
    assert str(out) in error_line(result.stderr)
    assert "Read-only file system" in result.stderr


@needs_tmpfs
def test_constrained_full_folder_refuses_large_writes(tmp_path):
    out = tmp_path / "full"
    result = run_cli(
        ["sh", "-c", f"head -c 1000000 /dev/zero > {out}/big"], constrained=(out, "full")
    )
    assert result.returncode != 0
    assert "No space left" in result.stderr
    assert not (out / "big").exists()  # the tmpfs (and what it held) was the command's alone


def test_subprocess_mode_under_umask(tmp_path):
    script = (
        "from stseg_data.atomic import atomic_write\n"
        f"with atomic_write({str(tmp_path / 'o.txt')!r}, 'w') as h: h.write('x')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, preexec_fn=lambda: os.umask(0o027))
    assert stat.S_IMODE((tmp_path / "o.txt").stat().st_mode) == 0o640
