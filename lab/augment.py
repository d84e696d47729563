"""Augmentation catalogue: every `augment_*` setting -> the Keras layer that does it.

Augmentation runs in the tf.data input pipeline, on the CPU, beside training (or, for a
dataset kept on an accelerator under JAX, inside the training step: lab.feed.device_augments).
Not inside the model: TensorFlow's random geometric layers there would switch XLA compilation
off, and the validation images must never be changed. Images arrive as float batches in [0, 1]
(lab.pipeline.to_model_range), so every layer that has a value range is told (0, 1).

Most entries are Keras core layers (Keras >= 3.13, what Colab ships). GridMask, channel
shuffle and cutout exist only in the optional keras-cv package: it is imported on first
need, once, and when it is missing the other augmentations still work.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np

from lab.images import MODEL_RANGE, ImageLook
from lab.pipeline import TrainingError, scale_images

VALUE_RANGE = MODEL_RANGE  # the pipeline's pixel range (lab.pipeline.to_model_range)
NO_AUGMENTATION = "No augmentation: every epoch sees the same images."
KERAS_CV_MISSING = "needs the optional keras-cv package, which is not installed here (pip install keras-cv)"


@dataclass(frozen=True)
class Augmentation:
    """One catalogue entry.

    factory(strength, seed, look) builds the layer; strength is the setting's value
    (1.0 for an on/off switch). `per_batch` layers mix pairs of images and their labels
    (they need one-hot labels); `colour_only` ones do nothing on grayscale and are skipped there.
    """

    label: str
    factory: Callable[[float, int, ImageLook], keras.layers.Layer]
    phrase: Callable[[float], str]  # plain words for describe()
    needs_keras_cv: bool = False
    per_batch: bool = False
    colour_only: bool = False
    # Keras 3.13's RandAugment fails on one channel (fixed later): grey images go through it as
    # grey RGB (three equal channels stay equal through its operations), then back to one channel.
    needs_rgb: bool = False
    # The layer also runs inside a compiled step on the device (lab.feed.on_device): Keras core,
    # backend-neutral ops, per image. Not RandAugment (its Equalization unrolls a 256-step loop
    # per channel outside TensorFlow), keras-cv's (TensorFlow only) or the mixers (they need labels).
    on_device: bool = False


def _fill(look: ImageLook) -> str:
    # Light strokes on black (digits): new pixels must be background black, not mirrored strokes.
    return "constant" if look.light_on_dark else "reflect"


@functools.cache
def _keras_cv():
    """The keras_cv module, or None when it cannot be imported (cached: it takes seconds)."""
    try:
        return importlib.import_module("keras_cv")
    except Exception:  # ImportError, or one of its own dependencies failing at import
        return None


def _cv(name: str):
    return getattr(_keras_cv().layers, name)


class _TFDataEqualization(keras.layers.Equalization):
    """Keras' Equalization, with its histogram by bincount whenever it runs on TensorFlow.

    Keras picks the histogram by the *global* backend: under JAX, even inside tf.data (where
    the layer runs on TensorFlow), it unrolls a 256-step loop per channel, and RandAugment
    then takes about 20 s per batch instead of a few milliseconds.
    """

    def _custom_histogram_fixed_width(self, values, value_range, nbins):
        if self.backend.name != "tensorflow":
            return super()._custom_histogram_fixed_width(values, value_range, nbins)
        ops = self.backend.numpy
        low, high = (self.backend.cast(v, "float32") for v in value_range)
        scaled = (self.backend.cast(values, "float32") - low) * (nbins - 1) / (high - low)
        indices = ops.clip(self.backend.cast(scaled, "int32"), 0, nbins - 1)
        return ops.bincount(ops.reshape(indices, [-1]), minlength=nbins)


def _rand_augment(strength: float, seed: int) -> keras.layers.Layer:
    layer = keras.layers.RandAugment(value_range=VALUE_RANGE, num_ops=2, factor=strength, seed=seed)
    layer.equalization = _TFDataEqualization(value_range=VALUE_RANGE)
    return layer


AUGMENTATIONS: dict[str, Augmentation] = {
    "augment_flip": Augmentation(
        "Flip", lambda s, seed, look: keras.layers.RandomFlip("horizontal", seed=seed),
        lambda s: "mirrored left-right half the time", on_device=True),
    "augment_rotation": Augmentation(
        "Rotation", lambda s, seed, look: keras.layers.RandomRotation(s, fill_mode=_fill(look), seed=seed),
        lambda s: f"rotated by up to ±{s * 360:.0f}°", on_device=True),
    "augment_zoom": Augmentation(
        "Zoom", lambda s, seed, look: keras.layers.RandomZoom((-s, s), fill_mode=_fill(look), seed=seed),
        lambda s: f"zoomed in or out by up to {s:.0%}", on_device=True),
    "augment_translate": Augmentation(
        "Shift", lambda s, seed, look: keras.layers.RandomTranslation(s, s, fill_mode=_fill(look), seed=seed),
        lambda s: f"shifted by up to {s:.0%} of their size", on_device=True),
    "augment_contrast": Augmentation(
        "Contrast", lambda s, seed, look: keras.layers.RandomContrast(s, value_range=VALUE_RANGE, seed=seed),
        lambda s: f"changed in contrast by up to {s:.0%}", on_device=True),
    "augment_brightness": Augmentation(
        "Brightness", lambda s, seed, look: keras.layers.RandomBrightness(s, value_range=VALUE_RANGE, seed=seed),
        lambda s: f"brightened or darkened by up to {s:.0%}", on_device=True),
    # Saturation 0.5 is "unchanged" for Keras; the strength widens the range around it (never
    # fully grey or infinitely saturated), and shifts hue by up to half the strength of a turn.
    "augment_color": Augmentation(
        "Colour jitter", lambda s, seed, look: keras.layers.RandomColorJitter(
            value_range=VALUE_RANGE, saturation_factor=(0.5 - 0.4 * s, 0.5 + 0.4 * s), hue_factor=s, seed=seed),
        lambda s: f"jittered in saturation and hue (strength {s:g})", colour_only=True, on_device=True),
    "augment_randaugment": Augmentation(
        "RandAugment", lambda s, seed, look: _rand_augment(s, seed),
        lambda s: f"changed by two random RandAugment operations (strength {s:g})", needs_rgb=True),
    "augment_erasing": Augmentation(
        "Random erasing", lambda s, seed, look: keras.layers.RandomErasing(factor=s, value_range=VALUE_RANGE, seed=seed),
        lambda s: f"partly erased (a random rectangle) {s:.0%} of the time", on_device=True),
    "augment_mixup": Augmentation(
        "MixUp", lambda s, seed, look: keras.layers.MixUp(alpha=s, seed=seed),
        lambda s: f"blended in pairs, labels too (MixUp, alpha {s:g})", per_batch=True),
    "augment_cutmix": Augmentation(
        "CutMix", lambda s, seed, look: keras.layers.CutMix(factor=s, seed=seed),
        lambda s: f"patched with a piece of another image, labels mixed by area (CutMix {s:g})", per_batch=True),
    "augment_gridmask": Augmentation(
        "GridMask", lambda s, seed, look: _cv("GridMask")(ratio_factor=(s, s), fill_value=0.0, seed=seed),
        lambda s: f"covered by a grid of black squares (GridMask ratio {s:g})", needs_keras_cv=True),
    "augment_channel_shuffle": Augmentation(
        "Channel shuffle", lambda s, seed, look: _cv("ChannelShuffle")(groups=look.channels, seed=seed),
        lambda s: "given their red, green and blue channels in a random order", needs_keras_cv=True, colour_only=True),
    "augment_cutout": Augmentation(
        "Cutout", lambda s, seed, look: _cv("RandomCutout")(s, s, fill_value=0.0, seed=seed),
        lambda s: f"cut by a black square of up to {s:.0%} of their size", needs_keras_cv=True),
}


def unavailable() -> dict[str, str]:
    """Setting name -> why it cannot be used on this machine (keras-cv missing); empty when all work."""
    if _keras_cv() is not None:
        return {}
    return {name: KERAS_CV_MISSING for name, a in AUGMENTATIONS.items() if a.needs_keras_cv}


def available() -> list[str]:
    """The settings (AUGMENTATIONS keys) that work on this machine."""
    missing = unavailable()
    return [name for name in AUGMENTATIONS if name not in missing]


def chosen(hp) -> list[tuple[str, float]]:
    """The (setting name, strength) pairs an HParams switches on, in catalogue order."""
    picks = []
    for name in AUGMENTATIONS:
        value = getattr(hp, name)
        if value:  # False and 0.0 are off; True counts as strength 1
            picks.append((name, float(value)))
    return picks


def is_active(hp, look: ImageLook | None = None) -> bool:
    """True when some augmentation is on (and, given the look, would change its images)."""
    return any(not (AUGMENTATIONS[n].colour_only and look is not None and look.channels < 3) for n, _ in chosen(hp))


def mixes(hp) -> bool:
    """True when MixUp or CutMix is on: training labels are then soft (one-hot, mixed)."""
    return any(AUGMENTATIONS[name].per_batch for name, _ in chosen(hp))


def _check_available(picks: list[tuple[str, float]]) -> None:
    missing = [name for name, _ in picks if name in unavailable()]
    if missing:
        names = ", ".join(f"{AUGMENTATIONS[n].label} ({n})" for n in missing)
        raise TrainingError(
            f"{names} {'needs' if len(missing) == 1 else 'need'} the optional keras-cv package, which is not "
            f"installed here: turn {'it' if len(missing) == 1 else 'them'} off, or run `pip install keras-cv` and "
            "restart the lab. Every other augmentation works without it.")


@dataclass
class Augmenter:
    """The chosen layers: per-image ones first, then the batch mixers (MixUp, CutMix).

    `apply(ds)` adds them to a tf.data pipeline; `num_classes` sizes the one-hot labels
    the mixers need.
    """

    per_image: list[keras.layers.Layer]
    per_batch: list[keras.layers.Layer]
    num_classes: int | None = None
    grey_as_rgb: tuple[bool, ...] = ()  # per per_image layer: feed one-channel batches as grey RGB
    device_ready: tuple[bool, ...] = ()  # per per_image layer: its catalogue entry's on_device

    @property
    def layers(self) -> list[keras.layers.Layer]:
        return self.per_image + self.per_batch

    @property
    def mixes(self) -> bool:
        return bool(self.per_batch)

    @property
    def on_device(self) -> bool:
        """Every layer can run inside the compiled step (no mixer, no keras-cv, no RandAugment)."""
        return (not self.per_batch and not any(self.grey_as_rgb) and len(self.device_ready) == len(self.per_image)
                and all(self.device_ready))

    def images(self, x):
        """Per-image layers on a float batch in [0, 1] (a TensorFlow tensor: this runs in tf.data)."""
        import tensorflow as tf

        for layer, as_rgb in zip(self.per_image, self.grey_as_rgb or [False] * len(self.per_image)):
            if as_rgb and x.shape[-1] == 1:
                x = layer(tf.repeat(x, 3, axis=-1), training=True)[..., :1]
            else:
                x = layer(x, training=True)
        return x

    def mix(self, x, y):
        """Batch mixers on images and one-hot float labels; soft labels come back (rows sum to 1)."""
        for layer in self.per_batch:
            out = layer({"images": x, "labels": y}, training=True)
            x, y = out["images"], out["labels"]
        return x, y

    def apply(self, ds):
        """Augment a tf.data Dataset of (float images in [0, 1], int labels) batches.

        Per-image layers first, then the mixers; with a mixer on, labels come out one-hot (float,
        num_classes wide). The maps run one batch at a time: the layers draw their random numbers
        from a seeded state they update, so batches augmented at once would take them in whatever
        order the threads run, and one seed would no longer give one run. A batch's transform
        already spreads over the cores (measured on 2 cores: the same images/s as parallel maps,
        bench/README.md), and the pipeline's prefetch keeps it beside the training step.
        """
        import tensorflow as tf  # tf.data is TensorFlow's whatever the Keras backend

        if self.per_image:
            ds = ds.map(lambda x, y: (self.images(x), y))
        if self.per_batch:
            ds = ds.map(lambda x, y: self.mix(x, tf.one_hot(y, self.num_classes, dtype=tf.float32)))
        return ds


def build(hp, look: ImageLook, num_classes: int | None = None) -> Augmenter | None:
    """The Augmenter for `hp`, or None when nothing would change an image.

    Colour-only augmentations are skipped on grayscale images. `num_classes` is needed
    when MixUp or CutMix is on (their labels are one-hot).

    Raises:
        lab.pipeline.TrainingError: a keras-cv augmentation is on and keras-cv is missing.
    """
    # Seeds follow the catalogue position among the chosen, so skipping one never reseeds another.
    picks = [(i, name, strength) for i, (name, strength) in enumerate(chosen(hp))
             if not (AUGMENTATIONS[name].colour_only and look.channels < 3)]  # nothing to do on grey
    _check_available([(name, strength) for _, name, strength in picks])
    per_image, per_batch, grey_as_rgb, device_ready = [], [], [], []
    for i, name, strength in picks:
        entry = AUGMENTATIONS[name]
        layer = entry.factory(strength, hp.seed + i, look)
        if entry.per_batch:
            per_batch.append(layer)
        else:
            per_image.append(layer)
            grey_as_rgb.append(entry.needs_rgb and look.channels == 1)
            device_ready.append(entry.on_device)
    if not per_image and not per_batch:
        return None
    if per_batch and not num_classes:
        raise ValueError("MixUp and CutMix mix labels: augment.build() needs num_classes")
    return Augmenter(per_image, per_batch, num_classes, tuple(grey_as_rgb), tuple(device_ready))


def describe(hp, look: ImageLook | None = None) -> str:
    """One plain-language line saying what augmentation does to the training images."""
    picks = chosen(hp)
    if not picks:
        return NO_AUGMENTATION
    done, skipped = [], []
    for name, strength in picks:
        entry = AUGMENTATIONS[name]
        if entry.colour_only and look is not None and look.channels < 3:
            skipped.append(entry.label)
        else:
            done.append(entry.phrase(strength))
    if not done:
        return f"No augmentation: {', '.join(skipped)} has no effect on grayscale images, so every epoch sees the same images."
    line = "Each epoch, training images are " + "; ".join(done) + "."
    if skipped:
        line += f" ({', '.join(skipped)}: no effect on grayscale images, skipped.)"
    return line


def preview_grid(data, hp, images: int = 4, versions: int = 5, seed: int = 0, cell: int = 64) -> np.ndarray:
    """A uint8 picture: one row per training image, the original first, then `versions`
    augmented copies, as training would see them (the same images for the same seed).

    Grayscale gives a 2-D array, colour H x W x 3. With no augmentation on, every copy
    equals the original (describe() says so).
    """
    from lab import datasets  # lazily: keeps this module light for the UI

    train_idx, _ = datasets.split(data, hp.validation_split, hp.seed)
    rng = np.random.default_rng(seed)
    pick = rng.choice(train_idx, size=min(images, len(train_idx)), replace=False)
    x = data.x[pick]
    aug = build(hp, data.look, data.num_classes)
    copies = _augmented_copies(aug, x, data.y[pick], versions)
    h, w, c = x.shape[1:]
    scale = max(1, cell // max(h, w))

    def tile(img, gap):
        big = np.kron(img, np.ones((scale, scale, 1), np.uint8))
        return np.pad(big, ((2, 2), (2, 2 + gap), (0, 0)), constant_values=128)

    rows = [np.concatenate([tile(x[r], 6)] + [tile(v[r], 0) for v in copies], axis=1) for r in range(len(x))]
    grid = np.concatenate(rows, axis=0)
    return grid[..., 0] if c == 1 else grid


def _augmented_copies(aug: Augmenter | None, x: np.ndarray, y: np.ndarray, versions: int) -> list[np.ndarray]:
    """`versions` augmented copies of a uint8 batch, through the training pipeline's own steps
    (scaling, then Augmenter.apply), in the original order (no shuffling)."""
    if aug is None:
        return [x] * versions
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensors((x, y)).repeat(versions).map(scale_images)
    return [np.clip(np.round(b.numpy() * 255.0), 0, 255).astype(np.uint8) for b, _ in aug.apply(ds)]
