"""One MIT licence: the root LICENSE, and a byte-identical copy in each package folder that its
pyproject names as a licence file (poetry-core builds from the package folder, so the copy is what
lands in the wheel's dist-info and the sdist; `nox -s wheels` checks the built archives)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))


def test_root_license_is_mit_by_the_stseg_authors() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the stseg authors" in text


def test_five_packages_found() -> None:
    assert [p.name for p in PACKAGES] == [
        "ssen-instance",
        "stseg-data",
        "stseg-models",
        "stseg-train",
        "stseg-viz",
    ]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_package_license_is_the_root_license(package: Path) -> None:
    assert (package / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_pyproject_declares_mit_and_the_license_file(package: Path) -> None:
    with open(package / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
