"""Feeding the accelerator at its speed: images kept on the device, metrics read without stalling it.

Two things cost a fast device most of its time on the lab's small datasets (issue 19):

- **Host → device copies.** A tf.data pipeline gathers and scales every batch on the host, then
  copies it in. When the dataset fits in the device's memory, `resident` keeps every image there
  once (uint8, as loaded) and `on_device` wraps the model in a trainer whose input is a batch of
  *indices*: the gather, the scaling to 0..1 and the cast run on the device, inside the compiled
  step. Only the indices (4 bytes an image) and labels cross each step. The epochs keep the same
  shape as lab.pipeline's: every image each epoch, the last batch topped up (index_pipelines uses
  the same ordering), the validation batches padded with zero-weight copies, so compiled steps
  see fixed shapes. Augmentation joins them when every chosen layer has a device version
  (lab.augment's `on_device`: flips, rotations, zooms, shifts, contrast, brightness, colour,
  erasing) and the device is an accelerator under JAX (`device_augments`): the layers run in the
  trainer between the gather and the model, in training steps only. The rest (MixUp, CutMix,
  RandAugment, keras-cv's, or any augmentation under TensorFlow on an accelerator, whose random
  geometric layers would switch XLA off) keep the tf.data image pipelines.
- **Reading metrics.** Turning a step's loss into a Python float waits for that step to finish,
  so a live chart that reads every few steps stops the host from queueing the next ones.
  `LateReadCallbacks` hands the callbacks each step's logs unread, and the chart's callback reads
  a point's values only when the next point is due: by then the device has long finished them,
  and the steps queued since keep it busy. The Stop flag is still checked at every call.

The trainer shares its layers (and so its weights and optimizer) with the model: what is saved
is the model alone, never the images.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from lab.images import PIXEL_MAX
from lab.pipeline import _padded, _whole_epoch_batches

RESIDENT_MB = 1024  # images kept on each device at most; larger datasets stream through tf.data
RESIDENT_ENV = "VISION_LAB_RESIDENT_MB"  # overrides RESIDENT_MB; 0 turns device-resident input off
DEVICE_AUGMENT_ENV = "VISION_LAB_DEVICE_AUGMENT"  # "auto" (default), "1" wherever it can, "0" never


def resident_limit_bytes() -> int:
    try:
        return int(float(os.environ.get(RESIDENT_ENV, RESIDENT_MB)) * 2**20)
    except ValueError:
        return RESIDENT_MB * 2**20


def store_dtype(runtime) -> str:
    """uint8 where the gather runs in XLA (JAX) or on a CPU; float32 for TensorFlow on a GPU or TPU,
    whose resource-gather kernels do not take uint8 (0..255 are exact in float32)."""
    return "uint8" if runtime.backend == "jax" or runtime.device_kind.upper() == "CPU" else "float32"


def resident(x: np.ndarray, runtime) -> bool:
    """Whether the images `x` are kept on the device: they fit in resident_limit_bytes() as stored."""
    size = int(np.prod(x.shape, dtype=np.int64)) * np.dtype(store_dtype(runtime)).itemsize
    return 0 < size <= resident_limit_bytes()


def device_augments(augmenter, runtime) -> bool:
    """Whether `augmenter` (lab.augment.Augmenter) runs inside the compiled step on the device.

    Its layers must all have device versions (augmenter.on_device). Then by default ("auto") on an
    accelerator under JAX, where the step is compiled by XLA with them and the host's few cores
    would otherwise augment every batch; on a CPU the tf.data pipeline already augments in
    parallel with the step. VISION_LAB_DEVICE_AUGMENT=1 uses it wherever it can (a CPU, TensorFlow
    on one device), 0 never.
    """
    if augmenter is None or not augmenter.on_device:
        return False
    if runtime.backend == "tensorflow" and runtime.replicas > 1:
        # a tf.distribute strategy mirrors the layers' random state: every replica would draw the
        # same transforms for its share of the batch (JAX compiles one step over the whole batch)
        return False
    choice = os.environ.get(DEVICE_AUGMENT_ENV, "auto").strip().lower()
    if choice in ("0", "off", "false", "no"):
        return False
    if choice in ("1", "on", "true", "yes"):
        return True
    return runtime.backend == "jax" and runtime.device_kind.upper() != "CPU"


_SCALED = np.arange(256, dtype=np.float32) / np.float32(PIXEL_MAX)  # pixel value -> model range, as lab.images does


class DeviceImages(keras.layers.Layer):
    """Holds a dataset's images on the device; maps a batch of indices to the model-range images.

    A non-trainable weight, so it lives wherever the trainer's variables live (each replica under
    a distribution). The output is float32 0..1, bit for bit lab.pipeline.to_model_range's.
    """

    def __init__(self, images: np.ndarray, dtype: str = "uint8", **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.images = self.add_weight(
            shape=images.shape, dtype=dtype, trainable=False, autocast=False, name="images",
            initializer=lambda shape, dtype=None: keras.ops.convert_to_tensor(images.astype(dtype), dtype=dtype),
        )

    def call(self, indices):
        batch = keras.ops.take(self.images, keras.ops.cast(indices, "int32"), axis=0)
        # A look-up, not a division: XLA may divide by a constant as a multiplication by its
        # reciprocal, one rounding off the Try tab's numpy scaling; the table is numpy's own.
        return keras.ops.take(keras.ops.convert_to_tensor(_SCALED), keras.ops.cast(batch, "int32"))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + tuple(self.images.shape[1:])


def on_device(model: keras.Model, x: np.ndarray, runtime, loss, metrics, augment=()) -> keras.Model:
    """A compiled trainer: indices in, `model`'s predictions out, the images `x` held on the device.

    It trains `model` itself (shared layers, `model.optimizer`, the same steps per execution); call
    it inside nothing: it enters runtime.scope() itself. `augment`: per-image augmentation layers
    (lab.augment.Augmenter.per_image, with device versions) applied between the gather and the
    model; Keras runs them in training steps only, so validation sees the images as they are.
    """
    with runtime.scope():
        index = keras.Input(shape=(), dtype="int32", name="image_index")
        images = DeviceImages(x, store_dtype(runtime), name="device_images")(index)
        for layer in augment:
            # A float32 copy of the layer (same settings and seed): under mixed precision it would
            # otherwise shift and resample the pictures in float16.
            layer = type(layer).from_config({**layer.get_config(), "dtype": "float32"})
            if keras.backend.backend() == "jax":
                # Keras marks its random geometric layers as not XLA-ready (TensorFlow's image
                # transform is not), which runs the whole JAX step op by op, ~30x slower; under
                # JAX they are plain jnp and compile.
                layer.supports_jit = True
            images = layer(images)
        trainer = keras.Model(index, model(images), name=f"{model.name}_on_device")
        trainer.compile(optimizer=model.optimizer, loss=loss, weighted_metrics=metrics,
                        steps_per_execution=model.steps_per_execution)
    return trainer


def index_pipelines(train_idx, y_train, val_idx, y_val, global_batch, seed):
    """(train, validation) batches of (indices, labels[, weights]) for a trainer from `on_device`.

    The same epochs as lab.pipeline's image pipelines: training reshuffled each epoch, every index
    at least once in full batches; validation every index once, the last batch padded with
    zero-weight copies. On TensorFlow: tf.data, index for image the image pipelines' order. On JAX:
    numpy batches (`IndexBatches`), since Keras' JAX loop pulls every batch through Python and a
    tf.data step costs ~0.2 ms there (as much as a small model's whole step on a CPU).
    """
    val_idx, val_y, val_w = _padded(np.asarray(val_idx, np.int32), y_val, global_batch)
    if keras.backend.backend() == "jax":
        return (IndexBatches(train_idx, y_train, global_batch, seed),
                IndexBatches(val_idx, val_y, global_batch, weights=val_w))
    train = _whole_epoch_batches(np.asarray(train_idx, np.int32), y_train, global_batch, seed)
    val = tf.data.Dataset.from_tensor_slices((val_idx, val_y, val_w))
    return (train.prefetch(tf.data.AUTOTUNE),
            val.batch(global_batch, drop_remainder=True).cache().prefetch(tf.data.AUTOTUNE))


class IndexBatches(keras.utils.PyDataset):
    """Fixed-shape numpy batches of (indices, labels[, weights]).

    With a `seed`, training's epochs: a new random order each epoch (numpy, from (seed, epoch)),
    every index at least once, the last batch topped up from the order's start as lab.pipeline
    does. Without one, the rows in order (validation, already padded to whole batches).
    """

    def __init__(self, idx, y, global_batch: int, seed: int | None = None, weights=None):
        super().__init__()
        self.idx, self.y = np.asarray(idx, np.int32), np.asarray(y)
        self.weights = None if weights is None else np.asarray(weights, np.float32)
        self.global_batch, self.seed, self.epoch = global_batch, seed, 0
        self.steps = -(-len(self.idx) // global_batch)
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        n = len(self.idx)
        if self.seed is None:
            return np.arange(self.steps * self.global_batch).reshape(self.steps, self.global_batch) % n
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        extra = self.steps * self.global_batch - n
        if extra:  # np.tile covers extra > n (a batch larger than the data)
            order = np.concatenate([order, np.tile(order, extra // n + 1)[:extra]])
        return order.reshape(self.steps, self.global_batch)

    @property
    def num_batches(self) -> int:
        return self.steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i):
        rows = self._order[i]
        batch = (self.idx[rows], self.y[rows])
        return batch if self.weights is None else (*batch, self.weights[rows])

    def on_epoch_end(self):
        if self.seed is not None:
            self.epoch += 1
            self._order = self._epoch_order()


class LateReadCallbacks(keras.callbacks.CallbackList):
    """A CallbackList that never reads a step's logs for its callbacks: they get them as they are.

    Keras turns the logs into floats before every `on_train_batch_end` (a device → host sync that
    waits for the step). Here the callbacks get the step's own values, still on the device, and
    read the ones they need when they need them: lab.training.MetricsCallback reads a chart
    point's logs when the next point is due (that step long finished) or at the epoch's end.
    Validation batches get no logs at all (the callbacks only check Stop there).
    """

    def __init__(self, callbacks, model, epochs: int, steps: int):
        super().__init__(callbacks, add_history=True, add_progbar=False, model=model, epochs=epochs, steps=steps,
                         verbose=0)

    def on_train_batch_end(self, batch, logs=None):
        for cb in self.callbacks:
            cb.on_train_batch_end(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        for cb in self.callbacks:
            cb.on_test_batch_end(batch, None)
