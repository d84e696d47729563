"""MODELS registry: name -> ModelSpec(build(input_shape, num_classes, hp) -> keras.Model).

One family per file; adding a model is one file and one line here. The dropdown lists the keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from models import mlp, small_cnn


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable  # (input_shape: tuple, num_classes: int, hp) -> keras.Model


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec("mlp", mlp.DESCRIPTION, mlp.build),
    "small_cnn": ModelSpec("small_cnn", small_cnn.DESCRIPTION, small_cnn.build),
}
