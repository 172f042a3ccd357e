"""Repository-wide pytest hooks: skip `gpu` tests where no CUDA device is present.

Imported lazily so the torch-free packages (stseg-data, stseg-viz) never import torch here.
"""

from __future__ import annotations

import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("gpu") for item in items) or _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (CI has none)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)
