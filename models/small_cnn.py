"""A small convolutional network, after keras-io's mnist_convnet."""

import keras
from keras import layers

DESCRIPTION = "Two conv + pool blocks, then a dense classifier. Learns shapes; a little slower than the MLP."
FILTERS = (32, 64)
KERNEL = 3
DROPOUT = 0.3


def build(input_shape, num_classes, hp=None):
    """Conv(32) -> pool -> Conv(64) -> pool -> dropout -> softmax; 'same' padding keeps 8x8 inputs valid."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(FILTERS[0], KERNEL, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(FILTERS[1], KERNEL, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(DROPOUT),
            layers.Dense(num_classes),
            layers.Activation("softmax", dtype="float32"),
        ],
        name="small_cnn",
    )
