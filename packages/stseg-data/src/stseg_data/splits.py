"""Split lists (one scene name or relative path per line) resolved safely inside a dataset root.

Every entry is checked before anything is opened (RELIABILITY F28, E3): absolute paths, `..`
components and symlinks that resolve outside the root are refused with the list file, the line
number and the entry; so are missing entries and undecodable lines.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from stseg_data.errors import SplitFileError


def read_split_entries(list_file: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """(line number, entry) for each non-empty, non-comment line; the first whitespace field."""
    try:
        data = Path(list_file).read_bytes()
    except OSError as error:
        raise SplitFileError(
            f"{list_file}: cannot read split file ({error.strerror or error})"
        ) from None
    entries = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SplitFileError(
                f"{list_file}: line {lineno}: not UTF-8 text: {raw[:60]!r}"
            ) from None
        if not line or line.startswith("#"):
            continue
        if any(ord(c) < 32 for c in line):
            raise SplitFileError(f"{list_file}: line {lineno}: control character in entry {line!r}")
        entries.append((lineno, line.split()[0]))
    return entries


def resolve_entry(
    root: str | os.PathLike[str],
    entry: str,
    list_file: str | os.PathLike[str],
    lineno: int,
    *,
    must_exist: bool = True,
) -> Path:
    """root/entry, refusing escapes from root (absolute, '..', symlinks) and missing entries."""
    where = f"{list_file}: line {lineno}: entry {entry!r}"
    pure = PurePosixPath(entry.replace("\\", "/"))
    if pure.is_absolute() or Path(entry).is_absolute():
        raise SplitFileError(f"{where} is an absolute path; entries must be relative to {root}")
    if ".." in pure.parts:
        raise SplitFileError(f"{where} contains '..'; entries must stay inside {root}")
    root_resolved = Path(root).resolve()
    candidate = Path(root) / Path(*pure.parts)
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root_resolved):
        raise SplitFileError(
            f"{where} resolves to {resolved}, outside the dataset root {root_resolved}"
        )
    if must_exist and not candidate.exists():
        raise SplitFileError(f"{where}: {candidate} does not exist")
    return candidate


def read_split(
    list_file: str | os.PathLike[str], root: str | os.PathLike[str], *, must_exist: bool = True
) -> list[Path]:
    """All entries of a split list as paths inside `root` (see `resolve_entry`)."""
    return [resolve_entry(root, entry, list_file, lineno, must_exist=must_exist)
            for lineno, entry in read_split_entries(list_file)]  # fmt: skip


def write_split(path: str | os.PathLike[str], entries: list[str]) -> None:
    """Write a split list atomically, one entry per line."""
    from stseg_data.atomic import atomic_write

    with atomic_write(path, "w") as handle:
        handle.write("".join(f"{e}\n" for e in entries))
