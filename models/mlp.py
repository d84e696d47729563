"""The classic dense network of the MNIST tutorials."""

import keras
from keras import layers

DESCRIPTION = "Dense network: flatten the pixels, one hidden layer of 128 units. Fast, no notion of space."
HIDDEN_UNITS = 128
DROPOUT = 0.2


def build(input_shape, num_classes, hp=None):
    """Flatten -> Dense(128, relu) -> Dropout -> softmax."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Flatten(),
            layers.Dense(HIDDEN_UNITS, activation="relu"),
            layers.Dropout(DROPOUT),
            layers.Dense(num_classes),
            # float32 output keeps the softmax stable under mixed precision
            layers.Activation("softmax", dtype="float32"),
        ],
        name="mlp",
    )
