"""Transfer learning: a keras.applications backbone trained on ImageNet, frozen, plus a new head.

Only the head (one Dense layer) learns at first; the backbone's features stay as ImageNet taught
them. After keras-io's transfer_learning guide. The inputs are adapted to what the backbone expects:
resized up to IMAGE_SIZE, grayscale repeated to 3 channels, and [0, 1] scaled to [0, 255]
(both backbones start with their own Rescaling layers that expect 0..255 pixels).

The model is one flat functional graph, image -> probabilities (what a run saves), made of two
parts that share its layers: `feature_extractor(model)` (image -> pooled features) and
`head(model)` (features -> Dropout -> Dense -> softmax). Training `head(model)` on features
computed once (lab.features) trains the full model's classifier, with no copying.
`unfreeze_top(model, n)` prepares fine-tuning.

The ImageNet weights download once into the Keras cache (~/.keras/models). Set
VISION_LAB_PRETRAINED=0 (or pass pretrained=False) to build with random weights instead:
the tests do, so they run offline.
"""

from __future__ import annotations

import os
import urllib.error
import warnings

import keras
from keras import layers

PRETRAINED_ENV = "VISION_LAB_PRETRAINED"  # "0" builds the backbones with random weights (offline tests)
DROPOUT = 0.2
PIXEL_SCALE = 255.0  # the lab feeds [0, 1]; the backbones' own Rescaling layers expect [0, 255]
FEATURES = "avg_pool"  # the layer whose output the feature extractor ends with
HEAD = ("dropout", "classifier", "softmax")  # the layers after it, in order: the part that learns
FROM_SCRATCH = "mlp, small_cnn, resnet, tiny_vit"

MOBILENET_DESCRIPTION = (
    "MobileNetV3-Small pretrained on ImageNet, frozen; only a new last layer learns, on features computed "
    "once (seconds), or also fine-tune its top layers. Images are enlarged to 128x128. Downloads ~4 MB of "
    "weights the first time (needs internet)."
)
MOBILENET_SIZE = 128
EFFICIENTNET_DESCRIPTION = (
    "EfficientNet-B0 pretrained on ImageNet, frozen; only a new last layer learns, or also fine-tune its "
    "top layers. Stronger features than MobileNet, about 4x slower to compute. Images are enlarged to "
    "128x128. Downloads ~16 MB of weights the first time."
)
EFFICIENTNET_SIZE = 128

# What a failed download raises: keras' get_file re-raises urllib errors as a plain
# Exception("URL fetch failure on ...") (the URLError stays in __context__); a truncated
# download fails its hash check with a ValueError.
_DOWNLOAD_MESSAGES = ("URL fetch failure", "Incomplete or corrupted file")


def pretrained_default() -> bool:
    """False when VISION_LAB_PRETRAINED is 0/false/no/off; read at build time, so tests can set it."""
    return os.environ.get(PRETRAINED_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _is_download_error(error: BaseException) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError)):
            return True
        if any(m in str(error) for m in _DOWNLOAD_MESSAGES):
            return True
        error = error.__cause__ or error.__context__
    return False


def backbone(application, label: str, size: int, pretrained: bool | None = None) -> keras.Model:
    """`application` (e.g. keras.applications.MobileNetV3Small) without its top, frozen.

    Raises:
        RuntimeError: the ImageNet weights are not cached and could not be downloaded.
    """
    pretrained = pretrained_default() if pretrained is None else pretrained
    try:
        with warnings.catch_warnings():
            # MobileNetV3 warns that it loads the 224x224 weights for other sizes: conv weights fit any size
            warnings.filterwarnings("ignore", message=".*Weights for input shape")
            model = application(input_shape=(size, size, 3), include_top=False,
                                weights="imagenet" if pretrained else None)
    except Exception as e:
        if pretrained and _is_download_error(e):
            raise RuntimeError(
                f"Could not download the ImageNet weights for {label} (no internet connection?). "
                f"Models that train from scratch ({FROM_SCRATCH}) still work."
            ) from e
        raise
    model.trainable = False
    return model


def transfer_model(base: keras.Model, input_shape, num_classes: int, size: int, name: str) -> keras.Model:
    """Adapt the inputs, run the frozen backbone in inference mode, then a new softmax head.

    Functional API: the backbone is called with training=False, so its batch-norm layers keep
    their ImageNet statistics (also after a follow-up unfreezes it for fine-tuning), and a
    grayscale image is repeated into three channels.
    """
    inputs = keras.Input(shape=input_shape)
    x = inputs
    if tuple(input_shape[:2]) != (size, size):
        x = layers.Resizing(size, size, name="resize")(x)
    if input_shape[-1] == 1:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    x = layers.Rescaling(PIXEL_SCALE, name="to_0_255")(x)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(DROPOUT, name="dropout")(x)
    x = layers.Dense(num_classes, name="classifier")(x)
    # float32 output keeps the softmax stable under mixed precision
    outputs = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def build_mobilenet_v3_small(input_shape, num_classes, hp=None, *, pretrained: bool | None = None):
    """Frozen MobileNetV3Small (ImageNet) at 128x128 + GlobalAveragePooling + Dropout + Dense softmax."""
    base = backbone(keras.applications.MobileNetV3Small, "MobileNetV3Small", MOBILENET_SIZE, pretrained)
    return transfer_model(base, input_shape, num_classes, MOBILENET_SIZE, "mobilenet_v3_small")


def build_efficientnet_b0(input_shape, num_classes, hp=None, *, pretrained: bool | None = None):
    """Frozen EfficientNetB0 (ImageNet) at 128x128 + GlobalAveragePooling + Dropout + Dense softmax."""
    base = backbone(keras.applications.EfficientNetB0, "EfficientNetB0", EFFICIENTNET_SIZE, pretrained)
    return transfer_model(base, input_shape, num_classes, EFFICIENTNET_SIZE, "efficientnet_b0")


def backbone_of(model: keras.Model) -> keras.Model:
    """The keras.applications backbone nested in a transfer model."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def feature_extractor(model: keras.Model) -> keras.Model:
    """Image in [0, 1] -> pooled backbone features, sharing the transfer model's layers."""
    return keras.Model(model.input, model.get_layer(FEATURES).output, name=f"{model.name}_features")


def head(model: keras.Model) -> keras.Model:
    """Features -> Dropout -> Dense -> softmax: the transfer model's own head layers (shared, not copied).

    Training it trains `model`, so the full image model needs no assembling afterwards.
    """
    inputs = keras.Input(shape=tuple(model.get_layer(FEATURES).output.shape[1:]), name="features")
    x = inputs
    for name in HEAD:
        x = model.get_layer(name)(x)
    return keras.Model(inputs, x, name=f"{model.name}_head")


def unfreeze_top(model: keras.Model, n: int) -> list[str]:
    """Make the backbone's top `n` layers trainable for fine-tuning; returns the names of those with weights.

    Batch-norm layers stay frozen (keras-io's advice): their statistics would be re-estimated from
    a few small batches and wreck the pretrained features. The model still calls the backbone with
    training=False, so they keep their ImageNet statistics either way. Recompile afterwards.
    """
    base = backbone_of(model)
    base.trainable = True  # the flag of the container gates all its layers
    top = {id(layer) for layer in base.layers[-n:]}
    unfrozen = []
    for layer in base.layers:
        layer.trainable = id(layer) in top and not isinstance(layer, layers.BatchNormalization)
        if layer.trainable and layer.weights:
            unfrozen.append(layer.name)
    return unfrozen
