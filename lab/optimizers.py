"""OPTIMIZERS registry: name -> a function of the learning rate giving a fresh Keras optimizer.

The Train tab lists the keys (lab.hparams) and training builds from the values (lab.training).
Keras is imported only when an optimizer is built, so listing the names imports no framework.
"""

from __future__ import annotations

from typing import Callable


def _adam(learning_rate: float):
    import keras

    return keras.optimizers.Adam(learning_rate=learning_rate)


def _sgd(learning_rate: float):
    import keras

    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)


OPTIMIZERS: dict[str, Callable] = {
    "adam": _adam,
    "sgd": _sgd,
}
