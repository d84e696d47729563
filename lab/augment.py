"""Augmentation catalogue: name -> factory(strength, seed, fill_mode) -> Keras preprocessing layer.

Augmentation runs in the tf.data input pipeline, on the CPU, in parallel with training: random
geometric layers inside the model would switch XLA compilation off.
"""

from __future__ import annotations

from typing import Callable

import keras

AUGMENTATIONS: dict[str, Callable[..., keras.layers.Layer]] = {
    "flip": lambda strength, seed, fill: keras.layers.RandomFlip("horizontal", seed=seed),
    "rotation": lambda strength, seed, fill: keras.layers.RandomRotation(strength, fill_mode=fill, seed=seed),
    "zoom": lambda strength, seed, fill: keras.layers.RandomZoom((-strength, strength), fill_mode=fill, seed=seed),
}


def chosen(hp) -> list[tuple[str, float]]:
    """The (name, strength) pairs an HParams switches on."""
    picks = [("flip", 1.0)] if hp.augment_flip else []
    picks += [(n, s) for n, s in (("rotation", hp.augment_rotation), ("zoom", hp.augment_zoom)) if s > 0]
    return picks


def build(hp, look) -> keras.Sequential | None:
    """A Sequential of the chosen layers, or None when augmentation is off.

    Empty space is filled with black for light-on-dark images (digits), else by reflection.
    """
    picks = chosen(hp)
    if not picks:
        return None
    fill = "constant" if look.light_on_dark else "reflect"
    return keras.Sequential([AUGMENTATIONS[n](s, hp.seed + i, fill) for i, (n, s) in enumerate(picks)], name="augment")
