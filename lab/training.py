"""Compile and fit one job, and the callback that records metrics for the live charts.

The callback records and flags; it never renders (keras `History`, `TerminateOnNaN`). It
writes plain dicts into a `TrainingLog`, which any number of watchers can copy at once.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from lab import augment, datasets
from lab.backend import Runtime
from models import MODELS

OPTIMIZERS = {
    "adam": lambda lr: keras.optimizers.Adam(learning_rate=lr),
    "sgd": lambda lr: keras.optimizers.SGD(learning_rate=lr, momentum=0.9),
}
# Training curves get this many points per epoch at most; each read of the logs syncs the device.
RECORDS_PER_EPOCH = 10
DIVERGED = "the loss diverged (became NaN or infinite): try a lower learning rate"


class TrainingError(ValueError):
    """The job cannot start as asked (the message says what to change)."""


@dataclass
class TrainingLog:
    """What one job has done so far; appended by the training thread, copied by watchers."""

    rows: list[dict] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    progress: dict = field(default_factory=dict)
    diverged: bool = False

    def snapshot(self) -> list[dict]:
        # list() of a list that only grows is safe without a lock under the GIL
        return [dict(r) for r in list(self.rows)]


class MetricsCallback(keras.callbacks.Callback):
    """Appends {step, epoch, loss, accuracy[, val_*]} rows; honours Stop; catches divergence.

    Args:
        log: where rows, progress and the stop flag live.
        steps_per_epoch: optimizer steps in one epoch.
        global_batch: images per step over all replicas (for images per second).
    """

    def __init__(self, log: TrainingLog, steps_per_epoch: int, global_batch: int):
        super().__init__()
        self.log = log
        self.steps_per_epoch = steps_per_epoch
        self.global_batch = global_batch
        self.every = max(1, steps_per_epoch // RECORDS_PER_EPOCH)
        self._good_weights = None

    def on_train_begin(self, logs=None):
        self._epoch = 0
        self._next = self.every
        self._good_weights = self.model.get_weights()
        self.log.progress.update(phase="training", epoch=0, step=0, steps_per_epoch=self.steps_per_epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._next = self.every
        self._last = 0
        # Speed is measured from here; in the first epoch from its first step (after compilation).
        self._mark = (time.perf_counter(), 0) if epoch > 0 else None

    def on_train_batch_end(self, batch, logs=None):
        if self.log.stop.is_set():
            self.model.stop_training = True
        step_in_epoch = self._last = batch + 1
        if self._mark is None:
            self._mark = (time.perf_counter(), step_in_epoch)
        # The epoch's last point is written by on_epoch_end, with the validation values.
        if step_in_epoch < self._next or step_in_epoch >= self.steps_per_epoch:
            return
        self._next = step_in_epoch + self.every
        self._record(step_in_epoch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.log.stop.is_set() and self._last < self.steps_per_epoch:
            # Stopped mid-epoch: the point belongs where training stopped, and the validation
            # pass was cut short, so its numbers would be about one batch: leave them out.
            if not self.log.rows or self.log.rows[-1]["step"] != self._epoch * self.steps_per_epoch + self._last:
                self._record(self._last, logs)
            return
        row = self._record(self.steps_per_epoch, logs, val=True)
        if row is not None and not self.log.diverged:
            self._good_weights = self.model.get_weights()

    def on_test_batch_end(self, batch, logs=None):
        if self.log.stop.is_set():  # Stop also cuts the validation pass short
            self.model.stop_evaluating = True

    def on_train_end(self, logs=None):
        if self.log.diverged and self._good_weights is not None:
            self.model.set_weights(self._good_weights)  # keep the last finite weights

    def _record(self, step_in_epoch: int, logs: dict, val: bool = False) -> dict | None:
        now = time.perf_counter()
        step = self._epoch * self.steps_per_epoch + step_in_epoch
        row = {"step": step, "epoch": round(self._epoch + step_in_epoch / self.steps_per_epoch, 4)}
        keys = ("loss", "accuracy") + (("val_loss", "val_accuracy") if val else ())
        for k in keys:
            if k in logs:
                row[k] = float(logs[k])
        if not all(math.isfinite(row.get(k, 0.0)) for k in keys):
            self.log.diverged = True
            self.model.stop_training = True
            return None
        self.log.progress.update(epoch=row["epoch"], step=step)
        t0, s0 = self._mark or (now, step_in_epoch)
        if not val and step_in_epoch > s0:
            # Averaged over this epoch's training steps: steadier than one interval, and free of
            # compilation and of validation passes.
            self.log.progress["images_per_sec"] = round((step_in_epoch - s0) * self.global_batch / max(now - t0, 1e-9), 1)
        self.log.rows.append(row)
        return row


def steps_per_execution(steps_per_epoch: int, device_kind: str) -> int:
    """Steps run per device call: several on accelerators (fewer host syncs), one on CPU.

    On a TPU or GPU the callback is then still called RECORDS_PER_EPOCH or more times an epoch.
    """
    if device_kind.lower() in ("cpu", ""):
        return 1
    return max(1, steps_per_epoch // (2 * RECORDS_PER_EPOCH))


def make_train_pipeline(x, y, global_batch, seed, augmenter=None) -> tf.data.Dataset:
    """Shuffled, augmented, fixed-shape batches (drop_remainder: XLA and TPUs want static shapes)."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(global_batch, drop_remainder=True).map(_to_model_range, num_parallel_calls=tf.data.AUTOTUNE)
    if augmenter is not None:
        ds = ds.map(lambda a, b: (augmenter(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_eval_pipeline(x, y, global_batch) -> tf.data.Dataset:
    """Every validation image exactly once, in fixed-shape batches.

    The last batch is padded with zero-weight copies, so shapes stay static and the
    padding does not count in loss or accuracy.
    """
    pad = (-len(x)) % global_batch
    w = np.concatenate([np.ones(len(x), np.float32), np.zeros(pad, np.float32)])
    if pad:
        x = np.concatenate([x, np.repeat(x[:1], pad, axis=0)])
        y = np.concatenate([y, np.repeat(y[:1], pad, axis=0)])
    ds = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(global_batch, drop_remainder=True)
    return ds.map(lambda a, b, c: (_to_model_range(a, b)[0], b, c)).cache().prefetch(tf.data.AUTOTUNE)


def _to_model_range(x, y):
    # Same scaling as lab.images.to_model_range (uint8 0..255 -> float 0..1); a test checks they agree.
    return tf.cast(x, tf.float32) / 255.0, y


def build_model(hp, data: datasets.Dataset, runtime: Runtime, steps_per_epoch: int = 1) -> keras.Model:
    """Build and compile the chosen model inside the runtime's distribution scope."""
    spe = steps_per_execution(steps_per_epoch, runtime.device_kind)
    if runtime.strategy is not None:
        # Keras 3's multi-step TF loop (a tf.while_loop over get_next_as_optional) fails under
        # MirroredStrategy ("You must feed a value for placeholder tensor ...", keras#19246),
        # e.g. on two GPUs; JAX's DataParallel takes several steps per call without trouble.
        spe = 1
    with runtime.scope():
        model = MODELS[hp.model].build(data.look.shape(), data.num_classes, hp)
        model.compile(
            optimizer=OPTIMIZERS[hp.optimizer](hp.learning_rate),
            loss="sparse_categorical_crossentropy",
            # weighted: the zero-weight padding of the last validation batch must not count
            weighted_metrics=["accuracy"],
            steps_per_execution=spe,
        )
    return model


@dataclass
class FitResult:
    model: keras.Model
    stopped: bool
    diverged: bool
    class_names: tuple[str, ...]


def fit(hp, runtime: Runtime, log: TrainingLog | None = None, data: datasets.Dataset | None = None) -> FitResult:
    """Train one model as `hp` says, recording into `log`.

    Args:
        hp: validated HParams.
        runtime: devices and distribution (lab.backend.runtime()).
        log: receives metric rows and progress, and carries the stop flag.
        data: the dataset (defaults to loading `hp.dataset`).

    Raises:
        TrainingError: when the settings cannot work with this dataset (batch too large, ...).
    """
    log = log or TrainingLog()
    data = data or datasets.load(hp.dataset)
    keras.utils.set_random_seed(hp.seed)
    train_idx, val_idx = datasets.split(data, hp.validation_split, hp.seed)
    global_batch = hp.batch_size * runtime.replicas
    if global_batch > len(train_idx):
        raise TrainingError(
            f"batch size {hp.batch_size} × {runtime.replicas} device(s) is more than the "
            f"{len(train_idx)} training images; choose at most {len(train_idx) // runtime.replicas}"
        )
    steps = len(train_idx) // global_batch
    log.progress.update(phase="building the model", replicas=runtime.replicas)
    model = build_model(hp, data, runtime, steps)
    train_ds = make_train_pipeline(data.x[train_idx], data.y[train_idx], global_batch, hp.seed, augment.build(hp, data.look))
    val_ds = make_eval_pipeline(data.x[val_idx], data.y[val_idx], global_batch)
    callback = MetricsCallback(log, steps, global_batch)
    if not log.stop.is_set():
        # shuffle=False: the tf.data pipeline already reshuffles every epoch
        model.fit(train_ds, epochs=hp.epochs, validation_data=val_ds, callbacks=[callback], verbose=0, shuffle=False)
    return FitResult(model, stopped=log.stop.is_set() and not log.diverged, diverged=log.diverged, class_names=data.class_names)
