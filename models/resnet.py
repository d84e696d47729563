"""A small ResNet: a stem conv, three residual blocks with batch norm, global average pooling.

After He et al. 2015 ("Deep Residual Learning"), shrunk for 8x8 digits up to 96x96 photos.
Functional API: the skip connections join two paths, which a Sequential list cannot express.
"""

import keras
from keras import layers

DESCRIPTION = ("Small ResNet: a stem conv and three residual blocks (skip connections + batch norm), "
               "then global average pooling. Deeper than the small CNN and still trains smoothly.")
STEM_FILTERS = 32
BLOCK_FILTERS = (32, 64, 128)  # one residual block each; blocks 2 and 3 halve the grid when they can
KERNEL = 3
STEM_POOL_UNTIL = 16  # the stem max-pools while the image is larger than this (96 -> 48 -> 24 -> 12)
SMALLEST_GRID = 2  # a block halves the grid only while the result is at least 2x2 (8x8 digits: 8 -> 4 -> 2)
DROPOUT = 0.2
# Keras' default 0.99 lags ~100s of steps behind the weights: on the 1.4k digits (44 steps an epoch) the
# validation curve looked like heavy overfitting for the first ~7 epochs. 0.9 (PyTorch's default) follows.
BN_MOMENTUM = 0.9


def residual_block(x, filters: int, stride: int, name: str):
    """conv-bn-relu -> conv-bn, plus the input (through a 1x1 conv when the shape changes), -> relu."""
    y = layers.Conv2D(filters, KERNEL, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, KERNEL, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(y)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_shortcut")(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_shortcut_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def _grid(x) -> int:
    return min(x.shape[1], x.shape[2])


def build(input_shape, num_classes, hp=None):
    """Stem conv (+ max-pool on large images) -> 3 residual blocks -> global average pool -> softmax."""
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(STEM_FILTERS, KERNEL, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    pools = 0
    while _grid(x) > STEM_POOL_UNTIL:
        pools += 1
        x = layers.MaxPooling2D(2, padding="same", name=f"stem_pool{pools}")(x)
    for i, filters in enumerate(BLOCK_FILTERS):
        # the first block keeps the grid; later ones halve it while it stays at least SMALLEST_GRID wide
        stride = 2 if i > 0 and (_grid(x) + 1) // 2 >= SMALLEST_GRID else 1
        x = residual_block(x, filters, stride, name=f"block{i + 1}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(DROPOUT, name="dropout")(x)
    x = layers.Dense(num_classes, name="classifier")(x)
    # float32 output keeps the softmax stable under mixed precision
    outputs = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(inputs, outputs, name="resnet")
