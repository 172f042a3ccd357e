"""Re-exports of MinkowskiEngine 0.5.4's layers and functional ops beyond the U-Net core (filled by the ops work).

Every name listed in ``__all__`` here becomes a top-level name of `stseg_models.sparse`.
"""

__all__: list[str] = []
