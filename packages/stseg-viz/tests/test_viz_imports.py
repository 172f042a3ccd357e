"""stseg-viz stays light: importing every module pulls in neither torch nor pyplot (DESIGN §2)."""

from __future__ import annotations

import subprocess
import sys


def test_no_torch_no_pyplot_at_import() -> None:
    code = (
        "import sys\n"
        "import stseg_viz.cli, stseg_viz.render, stseg_viz.viewer, stseg_viz.export\n"
        "import stseg_viz.metric_plots, stseg_viz.curves\n"
        "bad = [m for m in ('torch', 'matplotlib.pyplot', 'MinkowskiEngine') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
