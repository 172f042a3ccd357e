"""ssen-instance uses only stseg-train's public API: every import of stseg_train in its source is
`from stseg_train import NAME` with NAME in `stseg_train.__all__` (an ast scan, so a lazy import
inside a function counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

import ssen_instance
import stseg_train

SOURCE = Path(ssen_instance.__file__).parent


def _stseg_train_imports(path: Path) -> list[tuple[int, str]]:
    """(line, "module:name") for every import of stseg_train or one of its modules."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stseg_train"):
            found += [(node.lineno, f"{node.module}:{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, f"{a.name}:") for a in node.names if a.name.startswith("stseg_train")
            ]
    return found


def test_ssen_instance_imports_only_public_stseg_train_names() -> None:
    public = set(stseg_train.__all__)
    bad, used = [], 0
    for path in sorted(SOURCE.rglob("*.py")):
        for line, spec in _stseg_train_imports(path):
            module, name = spec.split(":")
            used += 1
            if module != "stseg_train" or name not in public:
                bad.append(f"{path.name}:{line} {spec}")
    assert used >= 5  # the scan sees train.py's and demo.py's imports
    assert not bad, bad


def test_the_scan_catches_a_private_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from stseg_train.trainer import Trainer\n"
        "import stseg_train.run\nfrom stseg_train import train\n"
    )
    assert _stseg_train_imports(sample) == [
        (3, "stseg_train.run:"), (4, "stseg_train:train"), (2, "stseg_train.trainer:Trainer"),
    ]  # fmt: skip
