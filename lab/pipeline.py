"""The tf.data input pipelines that feed training, and what they share with the rest of the engine.

- pixel scaling: uint8 0..255 -> float32 0..1 (`to_model_range`, dividing by lab.images.PIXEL_MAX
  exactly as prediction's numpy twin lab.images.to_model_range does);
- batching: an epoch of `steps_per_epoch` fixed-shape batches, every image at least once
  (`make_train_pipeline`), every validation image exactly once with zero-weight padding
  (`make_eval_pipeline`), and the same over a frozen backbone's features (`make_feature_pipelines`);
- labels: integer, or soft (one-hot, mixed) when MixUp or CutMix is on, and the loss and
  accuracy that take both (`loss_and_metrics`);
- `TrainingError`: a job that cannot start as asked (lab.augment raises it too).

Augmentation plugs in as an object with `apply(ds)` (lab.augment.Augmenter); this module imports
no other engine module above lab.images, so augment and training can both import it.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from lab.images import PIXEL_MAX


class TrainingError(ValueError):
    """The job cannot start as asked (the message says what to change)."""


def to_model_range(x):
    """uint8 pixels 0..255 -> float32 0..1, as a TensorFlow op (lab.images.PIXEL_MAX)."""
    return tf.cast(x, tf.float32) / PIXEL_MAX


def scale_images(x, y, *weights):
    """A (images, labels[, weights]) batch with its images scaled to the model's range."""
    return (to_model_range(x), y, *weights)


def steps_per_epoch(n: int, global_batch: int) -> int:
    """Optimizer steps in one epoch of `n` training images: every image once, the last batch topped up."""
    return -(-n // global_batch)


def make_train_pipeline(x, y, global_batch, seed, augmenter=None) -> tf.data.Dataset:
    """Shuffled, augmented, fixed-shape batches (XLA and TPUs want static shapes), every image each epoch.

    An epoch is steps_per_epoch(len(x), global_batch) full batches (see _whole_epoch_batches).
    Augmentation (`augmenter`, from lab.augment.build) runs here, on whole batches, one batch at a
    time (so one seed gives one run: lab.augment.Augmenter.apply), never in the model; with MixUp
    or CutMix on, the labels come out one-hot and mixed.
    """
    ds = _whole_epoch_batches(x, y, global_batch, seed)
    ds = ds.map(scale_images, num_parallel_calls=tf.data.AUTOTUNE)
    if augmenter is not None:
        ds = augmenter.apply(ds)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_eval_pipeline(x, y, global_batch) -> tf.data.Dataset:
    """Every validation image exactly once, in fixed-shape batches.

    The last batch is padded with zero-weight copies, so shapes stay static and the
    padding does not count in loss or accuracy.
    """
    ds = tf.data.Dataset.from_tensor_slices(_padded(x, y, global_batch)).batch(global_batch, drop_remainder=True)
    return ds.map(scale_images).cache().prefetch(tf.data.AUTOTUNE)


def make_feature_pipelines(f_train, y_train, f_val, y_val, global_batch, seed) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """(train, validation) pipelines over precomputed feature vectors, batched like the image pipelines.

    Training batches are reshuffled each epoch with fixed shapes, every vector at least once, in the
    same order as make_train_pipeline's images (_whole_epoch_batches); validation sees every vector
    once, its last batch padded with zero-weight copies (as make_eval_pipeline does).
    """
    train = _whole_epoch_batches(f_train, y_train, global_batch, seed).prefetch(tf.data.AUTOTUNE)
    val = tf.data.Dataset.from_tensor_slices(_padded(f_val, y_val, global_batch)).batch(global_batch, drop_remainder=True)
    return train, val.cache().prefetch(tf.data.AUTOTUNE)


def _whole_epoch_batches(x, y, global_batch, seed) -> tf.data.Dataset:
    """(x, y) in full batches of `global_batch`, reshuffled each epoch; every row at least once an epoch.

    The epoch is one random order of all n rows followed by the first few rows of that same order,
    just enough to fill the last batch: ceil(n / global_batch) batches, the last one holding the
    order's final rows plus some of its first (all different rows, since global_batch <= n). Those
    top-up images are real and count fully, unlike zero-weight padding: batch norm's statistics,
    MixUp and CutMix partners and the loss's per-batch mean all see only real training images, and
    every step has the same batch size (so the running means Keras logs are plain means over steps).
    For a batch larger than the data (fit() lowers it first) rows repeat to fill it.
    """
    n = len(x)
    if n == 0:
        raise ValueError("no training images")
    steps = steps_per_epoch(n, global_batch)
    extra = steps * global_batch - n

    def epoch_order(epoch_seed):
        # the whole epoch's order in one op, then cut into its batches: tf.data handles `steps`
        # elements an epoch, not n (shuffling n single indices cost ~1 µs each: 1.2 ms a step at batch 512)
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([epoch_seed, tf.constant(seed, tf.int64)]))
        if extra:  # tf.tile covers extra > n as well (a batch larger than the data)
            order = tf.concat([order, tf.tile(order, [extra // n + 1])[:extra]], 0)
        return tf.reshape(order, (steps, global_batch))

    xs, ys = tf.constant(x), tf.constant(y)
    # one new random number an epoch (a new order each epoch), the same sequence for the same seed
    ds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1).map(epoch_order).unbatch()
    ds = ds.map(lambda i: (tf.gather(xs, i), tf.gather(ys, i)), num_parallel_calls=tf.data.AUTOTUNE)
    # Keras reads the cardinality: it knows the epoch's length without running out of data
    return ds.apply(tf.data.experimental.assert_cardinality(steps))


def _padded(x, y, global_batch):
    """(x, y, weights) grown to whole batches with zero-weight copies of the first row."""
    pad = (-len(x)) % global_batch
    w = np.concatenate([np.ones(len(x), np.float32), np.zeros(pad, np.float32)])
    if pad:
        x = np.concatenate([x, np.repeat(x[:1], pad, axis=0)])
        y = np.concatenate([y, np.repeat(y[:1], pad, axis=0)])
    return x, y, w


# --- soft labels: MixUp and CutMix train on mixed one-hot labels; validation stays integer ---


def _is_soft(y_true, y_pred) -> bool:
    # Decided from static shapes: one-hot rows are as wide as the predictions, integer labels
    # are (batch,) or (batch, 1).
    return len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == y_pred.shape[-1] != 1


@keras.saving.register_keras_serializable(package="vision_lab")
def soft_or_sparse_crossentropy(y_true, y_pred):
    """Cross-entropy that takes soft (one-hot, mixed) labels in training and integer labels in validation."""
    if _is_soft(y_true, y_pred):
        return keras.losses.categorical_crossentropy(y_true, y_pred)
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)


@keras.saving.register_keras_serializable(package="vision_lab")
def soft_or_sparse_accuracy(y_true, y_pred):
    """1 where the top prediction is the (largest share of the) label, else 0; either kind of label."""
    ops = keras.ops
    truth = ops.argmax(y_true, axis=-1) if _is_soft(y_true, y_pred) else ops.reshape(y_true, (-1,))
    return ops.cast(ops.equal(ops.cast(truth, "int32"), ops.cast(ops.argmax(y_pred, axis=-1), "int32")), "float32")


def loss_and_metrics(soft_labels: bool) -> tuple:
    """(loss, weighted metrics) for model.compile: Keras' sparse ones unless training labels are soft
    (lab.augment.mixes: MixUp or CutMix is on).

    The accuracy metric is named "accuracy" either way (logs: accuracy, val_accuracy). Call it inside
    the distribution scope: a metric object holds variables.
    """
    if not soft_labels:
        return "sparse_categorical_crossentropy", ["accuracy"]
    return soft_or_sparse_crossentropy, [keras.metrics.MeanMetricWrapper(soft_or_sparse_accuracy, name="accuracy")]
