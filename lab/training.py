"""Compile and fit one job, and the callback that records metrics for the live charts.

`fit` reads top-down: split the data, size the batches, build the model, then train on images
(lab.pipeline's tf.data batches, lab.augment's augmentation), or a transfer model's head on cached
backbone features (lab.features), then optionally fine-tune. The callback records and flags; it
never renders (keras `History`, `TerminateOnNaN`). It writes plain dicts into a `TrainingLog`,
which any number of watchers can copy at once.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import keras

from lab import augment, datasets, features, feed
from lab.backend import Runtime
from lab.contract import Progress
from lab.optimizers import OPTIMIZERS
from lab.slots import global_draws
# The pipelines and TrainingError are lab.pipeline's; these names stay importable from here too.
from lab.pipeline import (  # noqa: F401
    TrainingError,
    loss_and_metrics,
    make_eval_pipeline,
    make_feature_pipelines,
    make_train_pipeline,
    steps_per_epoch,
)
from models import MODELS, transfer

# Training curves get this many points per epoch at most; each read of the logs syncs the device.
RECORDS_PER_EPOCH = 10
DIVERGED = "the loss diverged (became NaN or infinite): try a lower learning rate"
# Fine-tuning starts from good pretrained weights: large steps would wreck them (keras-io transfer guide).
FINE_TUNE_LR_FACTOR = 0.1
# Transfer models without augmentation train their head on cached backbone features; False
# trains through the frozen backbone every epoch instead (benchmarks and tests compare the two).
FEATURE_CACHE = True
# Datasets that fit on the device train from there (lab.feed); False streams every batch through tf.data.
RESIDENT = True
CACHE_OFF_NOTE = "backbone features are not cached: augmentation changes every image, so each epoch runs the backbone"


@dataclass
class TrainingLog:
    """What one job has done so far; appended by the training thread, copied by watchers."""

    rows: list[dict] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default_factory=Progress)  # lab.contract: what the job is doing now
    diverged: bool = False

    def snapshot(self) -> list[dict]:
        # list() of a list that only grows is safe without a lock under the GIL
        return [dict(r) for r in list(self.rows)]


class MetricsCallback(keras.callbacks.Callback):
    """Appends {step, epoch, loss, accuracy[, val_*]} rows; honours Stop; catches divergence.

    A row's loss and accuracy are the mean over the training steps since the previous row (the
    first row of an epoch: since the epoch began), not Keras' running mean over the epoch so far,
    which restarts each epoch and so draws a sawtooth that students read as sudden progress.
    They are derived from the running means: with m_j after j steps and m_k after k steps of the
    same epoch, the k - j steps between averaged (m_k * k - m_j * j) / (k - j). Every step has the
    same batch size (make_train_pipeline tops up the last batch), so a running mean over the epoch
    is a plain mean over its steps. With steps_per_execution > 1 the callback runs every few steps;
    `batch` still counts steps, so the formula holds. A point's logs are read when the next point
    is due, or at the epoch's end: handed over unread (lab.feed.LateReadCallbacks), they may belong
    to a step the device is still running, and reading them would make the host wait for it.

    Args:
        log: where rows, progress and the stop flag live.
        steps_per_epoch: optimizer steps in one epoch.
        global_batch: images per step over all replicas (for images per second).
        phase: shown in log.progress while this fit runs ("training", "fine-tuning").
        weights_of: the model whose weights are kept for divergence (default: the fitted one); a
            trainer from lab.feed.on_device fits around the model and also holds the images.

    A fit that starts at initial_epoch=k continues the chart: its rows get epochs and steps after k's.
    """

    def __init__(self, log: TrainingLog, steps_per_epoch: int, global_batch: int, phase: str = "training",
                 weights_of: keras.Model | None = None):
        super().__init__()
        self.weights_of = weights_of
        self.log = log
        self.phase = phase
        self.steps_per_epoch = steps_per_epoch
        self.global_batch = global_batch
        self.every = max(1, steps_per_epoch // RECORDS_PER_EPOCH)
        self._good_weights = None

    def on_train_begin(self, logs=None):
        self._epoch = 0
        self._next = self.every
        self._good_weights = self._snapshot()
        self._first_epoch = True
        self.log.progress.update(phase=self.phase, steps_per_epoch=self.steps_per_epoch)
        # a follow-up fit (fine-tuning) keeps the position the previous one reached
        if self.log.progress.epoch is None:
            self.log.progress.update(epoch=0, step=0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._next = self.every
        self._last = 0
        self._prev = (0, {})  # (step in epoch, Keras' running means there) of the epoch's last row
        self._pending = None  # (step in epoch, logs) of a point not read yet
        # Speed is measured from here; in a fit's first epoch from its first step (after compilation).
        self._mark = None if self._first_epoch else (time.perf_counter(), 0)
        self._first_epoch = False

    def _weights_model(self) -> keras.Model:
        return self.weights_of if self.weights_of is not None else self.model

    def check_stop(self):
        if self.log.stop.is_set():
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self.check_stop()
        # batch is the execution's last step, counted past the epoch's end by a short last execution
        step_in_epoch = self._last = min(batch + 1, self.steps_per_epoch)
        if self._mark is None:
            self._mark = (time.perf_counter(), step_in_epoch)
        # The epoch's last point is written by on_epoch_end, with the validation values.
        if step_in_epoch < self._next or step_in_epoch >= self.steps_per_epoch:
            return
        self._next = step_in_epoch + self.every
        # These logs may still be on the device, their step still running (lab.feed.LateReadCallbacks):
        # read the previous point's now, its step long finished, and keep these for the next one.
        self._flush()
        self._pending = (step_in_epoch, logs or {}, time.perf_counter())

    def _flush(self):
        pending, self._pending = self._pending, None
        if pending is not None:
            self._record(*pending)

    def on_epoch_end(self, epoch, logs=None):
        self._flush()
        logs = dict(logs or {})
        if self.log.stop.is_set() and self._last < self.steps_per_epoch:
            # Stopped mid-epoch: the point belongs where training stopped, and the validation
            # pass was cut short, so its numbers would be about one batch: leave them out.
            if not self.log.rows or self.log.rows[-1]["step"] != self._epoch * self.steps_per_epoch + self._last:
                self._record(self._last, logs)
            return
        row = self._record(self.steps_per_epoch, logs, val=True)
        if row is not None and not self.log.diverged:
            self._good_weights = self._snapshot()

    def on_test_batch_end(self, batch, logs=None):
        if self.log.stop.is_set():  # Stop also cuts the validation pass short
            self.model.stop_evaluating = True

    def on_train_end(self, logs=None):
        if self.log.diverged and self._good_weights is not None:
            for variable, value in zip(self._weights_model().weights, self._good_weights):
                variable.assign(value)  # keep the last finite weights
        self._good_weights = None

    def _snapshot(self) -> list:
        """A copy of the weights that stays on the device: no host read-back, and no wait for the
        steps still queued there (get_weights() would do both, every epoch)."""
        return [keras.ops.copy(variable.value) for variable in self._weights_model().weights]

    def _record(self, step_in_epoch: int, logs: dict, at: float | None = None, val: bool = False) -> dict | None:
        """Append the row for `step_in_epoch`; `at`: when that step's call came (the speed's clock)."""
        now = at or time.perf_counter()
        step = self._epoch * self.steps_per_epoch + step_in_epoch
        row = {"step": step, "epoch": round(self._epoch + step_in_epoch / self.steps_per_epoch, 4)}
        keys = ("loss", "accuracy") + (("val_loss", "val_accuracy") if val else ())
        prev_step, prev_means = self._prev
        means = {k: float(logs[k]) for k in ("loss", "accuracy") if k in logs}
        for k, m in means.items():
            if k in prev_means and step_in_epoch > prev_step:
                # the steps since the previous row, from the two running means (see the class docstring)
                m = (m * step_in_epoch - prev_means[k] * prev_step) / (step_in_epoch - prev_step)
                if math.isfinite(m):  # float32 rounding must not draw a loss below 0 or an accuracy above 1
                    m = max(0.0, m) if k == "loss" else min(1.0, max(0.0, m))
            row[k] = m
        self._prev = (step_in_epoch, means)
        for k in keys[2:]:
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
            self.log.progress.images_per_sec = round((step_in_epoch - s0) * self.global_batch / max(now - t0, 1e-9), 1)
        self.log.rows.append(row)
        return row


def steps_per_execution(steps_per_epoch: int, device_kind: str) -> int:
    """Steps run per device call: several on accelerators (fewer host syncs), one on CPU.

    On a TPU or GPU the callback is then still called RECORDS_PER_EPOCH or more times an epoch.
    """
    if device_kind.lower() in ("cpu", ""):
        return 1
    return max(1, steps_per_epoch // (2 * RECORDS_PER_EPOCH))


def build_model(hp, data: datasets.Dataset, runtime: Runtime, steps_per_epoch: int = 1) -> keras.Model:
    """Build and compile the chosen model inside the runtime's distribution scope."""
    spe = steps_per_execution(steps_per_epoch, runtime.device_kind)
    if runtime.strategy is not None:
        # Keras 3's multi-step TF loop (a tf.while_loop over get_next_as_optional) fails under
        # MirroredStrategy ("You must feed a value for placeholder tensor ...", keras#19246),
        # e.g. on two GPUs; JAX's DataParallel takes several steps per call without trouble.
        spe = 1
    with runtime.scope():
        loss, metrics = loss_and_metrics(augment.mixes(hp))  # in the scope: a metric object holds variables
        model = MODELS[hp.model].build(data.look.shape(), data.num_classes, hp)
        model.compile(
            optimizer=OPTIMIZERS[hp.optimizer](hp.learning_rate),
            # MixUp/CutMix train on soft labels and validate on integer ones: lab.pipeline picks a
            # loss and an "accuracy" that take both; otherwise Keras' sparse ones.
            loss=loss,
            # weighted: the zero-weight padding of the last validation batch must not count
            weighted_metrics=metrics,
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
    split = datasets.split(data, hp.validation_split, hp.seed)  # (training, validation) indices
    global_batch = _global_batch(hp, runtime, len(split[0]), log)
    steps = steps_per_epoch(len(split[0]), global_batch)  # the last batch is topped up: every image trains
    log.progress.update(phase="building the model", replicas=runtime.replicas)
    with global_draws():  # the seed and the starting weights, with no page loading a model in between
        keras.utils.set_random_seed(hp.seed)
        model = build_model(hp, data, runtime, steps)
    is_transfer, augmenting = MODELS[hp.model].transfer, augment.is_active(hp, data.look)
    if is_transfer and FEATURE_CACHE and not augmenting:
        _fit_head_on_features(hp, runtime, log, data, model, split, global_batch, steps)
    else:
        if is_transfer and augmenting:
            log.progress.note = CACHE_OFF_NOTE
        _fit_on_images(hp, runtime, log, data, model, split, global_batch, steps, (0, hp.epochs), "training")
    if hp.fine_tune_epochs and log.rows and not (log.stop.is_set() or log.diverged):
        _fine_tune(hp, runtime, log, data, model, split, global_batch, steps)
    return FitResult(model, stopped=log.stop.is_set() and not log.diverged, diverged=log.diverged, class_names=data.class_names)


def _global_batch(hp, runtime: Runtime, n_train: int, log: TrainingLog) -> int:
    """Images per step over all replicas: the chosen batch on every device, lowered (with a note)
    when there are fewer training images than that."""
    global_batch = hp.batch_size * runtime.replicas
    if global_batch <= n_train:
        return global_batch
    # A class's own small dataset (20 webcam frames, say) should just train: one step per epoch.
    per_device = n_train // runtime.replicas
    if per_device < 1:
        raise TrainingError(f"only {n_train} training images for {runtime.replicas} device(s): "
                            "add pictures, or lower the validation fraction")
    log.progress.note = (f"batch size lowered from {hp.batch_size} to {per_device}: there are only "
                            f"{n_train} training images")
    return per_device * runtime.replicas


def _fit_on_images(hp, runtime, log, data, model, split, global_batch, steps, epochs: tuple[int, int],
                   phase: str) -> None:
    """model.fit over the images (augmented as hp says) from epoch epochs[0] to epochs[1].

    A dataset that fits on the device stays there (lab.feed.on_device): the batches are indices,
    gathered, scaled (and augmented, when lab.feed.device_augments) inside the compiled step.
    Otherwise, or with augmentation that must run on the host, tf.data pipelines.
    """
    train_idx, val_idx = split
    augmenter = augment.build(hp, data.look, data.num_classes)
    on_device_augment = feed.device_augments(augmenter, runtime)
    if RESIDENT and (augmenter is None or on_device_augment) and feed.resident(data.x, runtime):
        fitted = feed.on_device(model, data.x, runtime, *loss_and_metrics(False),
                                augment=augmenter.per_image if augmenter is not None else ())
        train_ds, val_ds = feed.index_pipelines(train_idx, data.y[train_idx], val_idx, data.y[val_idx], global_batch,
                                                hp.seed)
        log.progress.update(input="on the device" + (", augmented there" if augmenter is not None else ""))
    else:
        fitted = model
        train_ds = make_train_pipeline(data.x[train_idx], data.y[train_idx], global_batch, hp.seed, augmenter)
        val_ds = make_eval_pipeline(data.x[val_idx], data.y[val_idx], global_batch)
        log.progress.update(input="streamed from the host")
    callback = MetricsCallback(log, steps, global_batch, phase, weights_of=model)
    if not log.stop.is_set():
        # shuffle=False: the pipelines already reshuffle every epoch
        fitted.fit(train_ds, initial_epoch=epochs[0], epochs=epochs[1], validation_data=val_ds, verbose=0,
                   callbacks=feed.LateReadCallbacks([callback], fitted, epochs[1], steps), shuffle=False)


def _fit_head_on_features(hp, runtime, log, data, model, split, global_batch, steps) -> None:
    """Train only the transfer model's head, on its frozen backbone's features (computed once, cached).

    The head shares its layers with `model`, so this trains the full image model. Same split,
    batches and callback as training on images: the charts look the same, only faster.
    """
    feats = features.cached(transfer.feature_extractor(model), data, hp.model, log)
    if feats is None:  # Stop was pressed while the features were computed
        return
    with runtime.scope():
        head = transfer.head(model)
        # The model's own optimizer: the head's variables are the model's trainable ones, so the
        # saved model carries a matching optimizer state. (No augmentation here: the sparse loss.)
        loss, metrics = loss_and_metrics(augment.mixes(hp))
        # A head step is tiny, so dispatch dominates: run a chart interval of steps per call (2.7x
        # faster on 2 CPU cores); the curve keeps its points. Not under MirroredStrategy (see build_model).
        spe = 1 if runtime.strategy is not None else max(1, steps // RECORDS_PER_EPOCH)
        head.compile(optimizer=model.optimizer, loss=loss, weighted_metrics=metrics, steps_per_execution=spe)
    train_idx, val_idx = split
    train_ds, val_ds = make_feature_pipelines(feats[train_idx], data.y[train_idx], feats[val_idx], data.y[val_idx],
                                              global_batch, hp.seed)
    callback = MetricsCallback(log, steps, global_batch)
    if not log.stop.is_set():
        head.fit(train_ds, epochs=hp.epochs, validation_data=val_ds, verbose=0, shuffle=False,
                 callbacks=feed.LateReadCallbacks([callback], head, hp.epochs, steps))


def _fine_tune(hp, runtime, log, data, model, split, global_batch, steps) -> None:
    """Unfreeze the backbone's top layers (no batch norm) and train on images at a lower learning rate.

    The chart continues: epochs hp.epochs + 1 .. hp.total_epochs, steps numbered on.
    """
    with runtime.scope():
        transfer.unfreeze_top(model, hp.fine_tune_layers)
        # trainable flags changed: recompiling rebuilds the optimizer and the train function for them
        loss, metrics = loss_and_metrics(augment.mixes(hp))
        model.compile(optimizer=OPTIMIZERS[hp.optimizer](hp.learning_rate * FINE_TUNE_LR_FACTOR), loss=loss,
                      weighted_metrics=metrics, steps_per_execution=model.steps_per_execution)
    _fit_on_images(hp, runtime, log, data, model, split, global_batch, steps, (hp.epochs, hp.total_epochs),
                   "fine-tuning")

