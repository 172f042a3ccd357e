"""Re-exports of MinkowskiEngine 0.5.4's coordinate-generating layers (filled by the coordinates work).

Every name listed in ``__all__`` here becomes a top-level name of `stseg_models.sparse`.
"""

__all__: list[str] = []
