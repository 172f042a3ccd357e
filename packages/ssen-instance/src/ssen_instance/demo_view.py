"""Pictures of one room's predicted instances, drawn with stseg-viz (the `viz` extra).

stseg-viz is optional for ssen-instance (inference and training need no plotting library), so it
is imported here, lazily, and `ssen_instance.demo` checks it is installed before any work.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ssen_instance.inference import ScenePrediction
from ssen_instance.scenes import SUFFIX, SsenScene, write_ssen_scene
from stseg_data.atomic import atomic_write


def instance_map(pred: ScenePrediction) -> np.ndarray:
    """int64 [N]: 0 for points outside every predicted instance, else 1..K (best score wins where
    masks overlap), the id convention of stseg-viz's instance colouring."""
    return pred.instances.to_ids() + 1


def write_views(folder: Path, scene: SsenScene, pred: ScenePrediction) -> dict[str, Path]:
    """In `folder`: <scene>.instances.npy (the map above), <scene>.png (predicted instances beside
    the ground truth's, cut away to see into the room) and <scene>.html (the offline viewer with
    colourings rgb / predicted semantics / predicted instances / semantic errors)."""
    from stseg_data.pointcloud import PointCloud
    from stseg_viz.palettes import get_palette
    from stseg_viz.render import render_scene
    from stseg_viz.viewer import viewer_html

    folder.mkdir(parents=True, exist_ok=True)
    ids = instance_map(pred)
    npy = folder / f"{scene.name}.instances.npy"
    buffer = io.BytesIO()
    np.save(buffer, ids)
    with atomic_write(npy, "wb") as handle:
        handle.write(buffer.getvalue())
    # stseg-viz reads scenes from files: the room's SSEN file, with the predicted semantics.
    scene_file = folder / f"{scene.name}{SUFFIX}"
    write_ssen_scene(
        scene_file,
        SsenScene(scene.xyz, scene.rgb, scene.semantic, scene.instance, pred.semantic, scene.name),
    )
    png = folder / f"{scene.name}.png"
    truth_png = folder / f"{scene.name}.truth.png"
    k, n_true = len(pred.instances), len(np.unique(scene.instance[scene.instance > 0]))
    render_scene(scene_file, png, color_by="instance", labels=npy, cutaway=True,
                 title=f"{scene.name}: {k} predicted instances")  # fmt: skip
    render_scene(scene_file, truth_png, color_by="instance", cutaway=True,
                 title=f"{scene.name}: {n_true} ground-truth instances")  # fmt: skip
    cloud = PointCloud(scene.xyz, scene.rgb, scene.semantic, ids, str(scene_file))
    html_text, _ = viewer_html(
        cloud,
        prediction=pred.semantic,
        palette=get_palette("scannet20"),
        title=f"{scene.name}: SSEN instances (instance colouring = prediction)",
        labels_source="predicted semantics",
    )
    html = folder / f"{scene.name}.html"
    with atomic_write(html, "w") as handle:
        handle.write(html_text)
    return {"png": png, "truth_png": truth_png, "html": html, "instance_map": npy}
