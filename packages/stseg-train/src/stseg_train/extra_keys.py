"""The keys `TrainConfig.extra` may hold, each with its type, and their validation."""

from __future__ import annotations

from typing import Any

from stseg_train.errors import TrainInputError

# Every key `extra` may hold, with its type: the trainer's (heap, device, cache, resharding), the
# toy components', the synthetic job's data root, and the task entries ssen-instance writes. Any
# other key, or a value of another type, is refused, so a misspelt key cannot pass unnoticed.
EXTRA_KEYS: dict[str, tuple[type, ...]] = {
    "heap_mode": (str,),
    "heap_trim_every": (int,),
    "device": (str,),
    "cache_scenes": (bool,),
    "allow_reshard": (bool,),
    "toy_scenes": (int,),
    "toy_points": (int,),
    "toy_bn": (bool,),
    "toy_ignore": (float, int),
    "synthetic_data_root": (str,),
    "task": (str,),
    "recipe": (str,),
    "semantic_weights": (str,),
    "train_files": (list,),
    "loss": (dict,),
    "background_head": (bool,),
    "background_weight": (float, int),
}


def validate_extra(extra: dict[str, Any]) -> None:
    """Known `extra` keys only, each of its type; the numbers and names the trainer reads."""
    for key, value in extra.items():
        kinds = EXTRA_KEYS.get(key)
        if kinds is None:
            raise TrainInputError(
                f"config: unknown key extra.{key}; known keys: {', '.join(sorted(EXTRA_KEYS))}"
            )
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise TrainInputError(
                f"config: extra.{key} must be {kinds[0].__name__}, found {value!r}"
            )
    trim = extra.get("heap_trim_every", 1)
    if trim < 0:
        raise TrainInputError(
            f"config: extra.heap_trim_every must be an integer >= 0 (0 = never), found {trim!r}"
        )
    device = extra.get("device", "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise TrainInputError(f"config: extra.device must be auto, cpu or cuda, found {device!r}")
