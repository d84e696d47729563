"""A tiny Vision Transformer: cut the image into patches, let every patch attend to every other.

After Dosovitskiy et al. 2020 ("An Image is Worth 16x16 Words") and keras-io's
image_classification_with_vision_transformer, shrunk to two blocks and 64 dimensions.
Functional API: the residual connections join two paths.
"""

import keras
from keras import layers, ops

DESCRIPTION = ("Tiny Vision Transformer: cuts the image into patches and lets every patch attend to every "
               "other (2 attention blocks). Needs more data and epochs than a CNN to shine.")
PATCH_SIZES = (2, 4, 8, 16)  # the smallest that gives at most MAX_GRID patches a side: 8x8 -> 2, 28/32 -> 4, 96 -> 8
MAX_GRID = 12
EMBED_DIM = 64
NUM_HEADS = 4
MLP_DIM = 128
NUM_BLOCKS = 2
DROPOUT = 0.1
LN_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="vision_lab")
class PositionEmbedding(layers.Layer):
    """Adds a learned vector to each patch token, so the model knows where each patch came from.

    Input and output: (batch, patches, dim). Keras has no built-in layer for this.
    """

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=tuple(input_shape[1:]),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="embedding",
        )

    def call(self, x):
        return x + ops.cast(self.embedding, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def patch_size_for(input_shape) -> int:
    """The patch side for an image: 2 for 8x8, 4 for 28x28 and 32x32, 8 for 96x96."""
    side = max(input_shape[0], input_shape[1])
    for size in PATCH_SIZES:
        if -(-side // size) <= MAX_GRID:
            return size
    return PATCH_SIZES[-1]


def transformer_block(x, name: str):
    """Pre-norm block: x + attention(norm(x)), then x + mlp(norm(x))."""
    y = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"{name}_norm1")(x)
    y = layers.MultiHeadAttention(NUM_HEADS, EMBED_DIM // NUM_HEADS, dropout=DROPOUT, name=f"{name}_attention")(y, y)
    x = layers.Add(name=f"{name}_add1")([x, y])
    y = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"{name}_norm2")(x)
    y = layers.Dense(MLP_DIM, activation="gelu", name=f"{name}_mlp1")(y)
    y = layers.Dropout(DROPOUT, name=f"{name}_dropout")(y)
    y = layers.Dense(EMBED_DIM, name=f"{name}_mlp2")(y)
    return layers.Add(name=f"{name}_add2")([x, y])


def build(input_shape, num_classes, hp=None):
    """Patches (a strided conv) -> + positions -> 2 transformer blocks -> mean over patches -> softmax."""
    patch = patch_size_for(input_shape)
    inputs = keras.Input(shape=input_shape)
    # A conv with kernel = stride = patch size is the ViT's "flatten each patch, then Dense";
    # 'same' pads the border when the side is not a multiple of the patch size.
    x = layers.Conv2D(EMBED_DIM, patch, strides=patch, padding="same", name="patch_embedding")(inputs)
    x = layers.Reshape((x.shape[1] * x.shape[2], EMBED_DIM), name="patches")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    for i in range(NUM_BLOCKS):
        x = transformer_block(x, name=f"block{i + 1}")
    x = layers.LayerNormalization(epsilon=LN_EPSILON, name="final_norm")(x)
    x = layers.GlobalAveragePooling1D(name="mean_pool")(x)
    x = layers.Dense(num_classes, name="classifier")(x)
    # float32 output keeps the softmax stable under mixed precision
    outputs = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny_vit")
