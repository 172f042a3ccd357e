"""The repository's own tests (install pins, licence); `nox -s tests` runs them first.

tools/ is a folder of scripts, not a package: put it on sys.path so `import torch_pin` works as
it does in noxfile.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
