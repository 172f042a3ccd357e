"""The model zoo: every network of the original work, written once as configurable blocks."""

from stseg_models.zoo.registry import (
    ModelDescription,
    build_model,
    count_parameters,
    describe,
    list_models,
    resolve,
)
from stseg_models.zoo.spec import ModelSpec

__all__ = [
    "ModelDescription",
    "ModelSpec",
    "build_model",
    "count_parameters",
    "describe",
    "list_models",
    "resolve",
]
