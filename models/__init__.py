"""MODELS registry: name -> ModelSpec(build(input_shape, num_classes, hp) -> keras.Model).

One family per file; adding a model is one file and one line here. The dropdown lists the keys.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable

from models import mlp, resnet, small_cnn, transfer, vit


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable  # (input_shape: tuple, num_classes: int, hp) -> keras.Model
    transfer: bool = False  # a pretrained, frozen backbone plus a new head (fine-tuning and feature caching apply)


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec("mlp", mlp.DESCRIPTION, mlp.build),
    "small_cnn": ModelSpec("small_cnn", small_cnn.DESCRIPTION, small_cnn.build),
    "resnet": ModelSpec("resnet", resnet.DESCRIPTION, resnet.build),
    "tiny_vit": ModelSpec("tiny_vit", vit.DESCRIPTION, vit.build),
    "mobilenet_v3_small": ModelSpec("mobilenet_v3_small", transfer.MOBILENET_DESCRIPTION, transfer.build_mobilenet_v3_small, transfer=True),
    "efficientnet_b0": ModelSpec("efficientnet_b0", transfer.EFFICIENTNET_DESCRIPTION, transfer.build_efficientnet_b0, transfer=True),
}


@functools.lru_cache(maxsize=64)
def _summary(name: str, input_shape: tuple, num_classes: int) -> tuple[int, str]:
    import keras
    import numpy as np

    build = MODELS[name].build
    # The architecture does not depend on the weights: never download ImageNet weights to describe it.
    extra = {"pretrained": False} if "pretrained" in inspect.signature(build).parameters else {}
    model = build(input_shape, num_classes, None, **extra)
    rows = [("Layer (type)", "Output shape", "Params")]
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        kind = type(layer).__name__ + ("" if layer.trainable or not layer.weights else ", frozen")
        shape = str(tuple(layer.output.shape)).replace("None", "batch")
        rows.append((f"{layer.name} ({kind})", shape, f"{layer.count_params():,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    total = model.count_params()
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    lines += ["-" * len(lines[0]), f"Input {tuple(input_shape)}, {num_classes} classes: "
              f"{total:,} parameters, {trainable:,} trainable"]
    return total, "\n".join(lines)


def summary(name: str, input_shape, num_classes: int) -> tuple[int, str]:
    """(parameter count, a plain-text table of the layers) for model `name` built for this data.

    Builds the model once per (name, shape, classes) and remembers the answer; transfer models are
    described without their ImageNet weights (same layers and counts), so this needs no network.
    """
    if name not in MODELS:
        raise KeyError(f"no model {name!r}; choose one of {', '.join(MODELS)}")
    return _summary(name, tuple(int(d) for d in input_shape), int(num_classes))
