"""Training: the lab's fit against a bare model.fit, the callback's records, Stop and divergence."""

import itertools
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from lab import datasets, feed, images, pipeline, training
from lab.hparams import validate
from models import MODELS


def bare_fit_val_accuracy(hp) -> float:
    """The textbook way: same model, data split, seed and batch size; no lab machinery."""
    data = datasets.load(hp.dataset)
    tr, va = datasets.split(data, hp.validation_split, hp.seed)
    x = data.x.astype("float32") / 255.0
    keras.utils.set_random_seed(hp.seed)
    model = MODELS[hp.model].build(data.look.shape(), data.num_classes)
    model.compile(keras.optimizers.Adam(hp.learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    # every training image each epoch (Keras' last batch is smaller; the lab's is topped up)
    hist = model.fit(x[tr], data.y[tr], batch_size=hp.batch_size, epochs=hp.epochs,
                     validation_data=(x[va], data.y[va]), verbose=0)
    return hist.history["val_accuracy"][-1]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", "small_cnn"])
def test_lab_reaches_the_accuracy_of_a_bare_model_fit(runtime, model):
    hp = validate(model=model, epochs=8)
    log = training.TrainingLog()
    training.fit(hp, runtime, log)
    assert log.progress.input == "on the device"  # the reference holds on the device-resident path (lab.feed)
    lab_acc = log.rows[-1]["val_accuracy"]
    bare_acc = bare_fit_val_accuracy(hp)
    assert bare_acc > 0.9  # the reference itself learned
    assert abs(lab_acc - bare_acc) < 0.03, (lab_acc, bare_acc)


@pytest.mark.slow
def test_records_several_points_per_epoch_and_validation_each_epoch(runtime):
    hp = validate(epochs=3)
    log = training.TrainingLog()
    result = training.fit(hp, runtime, log)
    val_rows = [r for r in log.rows if "val_accuracy" in r]
    assert [r["epoch"] for r in val_rows] == [1.0, 2.0, 3.0]
    per_epoch = [sum(1 for r in log.rows if e < r["epoch"] <= e + 1) for e in range(3)]
    assert all(n >= 5 for n in per_epoch), per_epoch
    epochs = [r["epoch"] for r in log.rows]
    assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs)
    assert log.progress.images_per_sec > 0 and not result.stopped and not result.diverged
    # the validation accuracy is over exactly the held-out images (padding has zero weight)
    data = datasets.load("digits")
    _, va = datasets.split(data, hp.validation_split, hp.seed)
    probs = result.model.predict(data.x[va].astype("float32") / 255.0, verbose=0)
    assert val_rows[-1]["val_accuracy"] == pytest.approx(float(np.mean(probs.argmax(1) == data.y[va])), abs=1e-4)


class StopAfter(list):
    """Rows that press Stop as soon as the first point is written (deterministic timing)."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def append(self, row):
        super().append(row)
        self.log.stop.set()


@pytest.mark.slow
def test_stop_flag_ends_training_mid_epoch_and_keeps_the_model(runtime):
    log = training.TrainingLog()
    log.rows = StopAfter(log)
    result = training.fit(validate(epochs=100), runtime, log)
    assert result.stopped and result.model is not None
    # stopped at the first point (read when the next one was due: the two due so far), then where it stopped
    assert len(log.rows) <= 3 and log.rows[-1]["epoch"] < 1
    assert all(r["step"] % (45 // training.RECORDS_PER_EPOCH) == 0 for r in log.rows[:-1])
    # the last point is where training stopped, without a cut-short validation score
    assert log.rows[-1]["step"] > log.rows[0]["step"] and "val_accuracy" not in log.rows[-1]


def test_stop_from_another_thread_is_honoured_quickly(runtime):
    log = training.TrainingLog()

    def stop_after_first_point():
        while not log.rows:
            threading.Event().wait(0.01)
        log.stop.set()

    threading.Thread(target=stop_after_first_point, daemon=True).start()
    result = training.fit(validate(epochs=100), runtime, log)
    assert result.stopped and log.rows[-1]["epoch"] < 5


@pytest.mark.slow
def test_a_diverging_loss_stops_with_the_last_finite_weights(runtime, monkeypatch):
    # Learning rates a student can pick rarely reach NaN on digits (the loss is clipped), so
    # the schedule makes the blow-up certain: sane for two epochs, absurd from step 100 on.
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([100], [3e-3, 1e30])
    monkeypatch.setitem(training.OPTIMIZERS, "sgd", lambda lr: keras.optimizers.SGD(schedule))
    hp = validate(optimizer="sgd", epochs=20)
    log = training.TrainingLog()
    result = training.fit(hp, runtime, log)
    assert result.diverged and not result.stopped
    assert 1.0 <= log.rows[-1]["epoch"] < 4  # stopped soon after step 100, not after 20 epochs
    assert all(np.isfinite(r["loss"]) for r in log.rows)
    weights = result.model.get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    # the kept weights are the last good epoch's: they still classify as well as they did then
    data = datasets.load("digits")
    _, va = datasets.split(data, hp.validation_split, hp.seed)
    acc = float(np.mean(result.model.predict(data.x[va] / 255.0, verbose=0).argmax(1) == data.y[va]))
    last_val = [r["val_accuracy"] for r in log.rows if "val_accuracy" in r][-1]
    assert acc == pytest.approx(last_val, abs=1e-3)


def test_pipeline_scaling_is_the_same_as_the_try_tabs():
    x = np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1)
    ds = training.make_train_pipeline(x, np.zeros(4, np.int64), 4, seed=0)
    batch = next(iter(ds))[0].numpy()
    expected = images.to_model_range(x)
    assert np.allclose(np.sort(batch.ravel()), np.sort(expected.ravel()))
    # one scale, two twins: tf.data's (training, features) and numpy's (prediction) agree to the bit
    assert np.array_equal(pipeline.to_model_range(x).numpy(), expected)


def test_eval_pipeline_pads_to_static_batches_with_zero_weight():
    x = np.ones((10, 8, 8, 1), np.uint8)
    batches = list(training.make_eval_pipeline(x, np.zeros(10, np.int64), 4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 4]
    weights = np.concatenate([b[2].numpy() for b in batches])
    assert weights.sum() == 10 and weights[-2:].tolist() == [0, 0]


def test_augmentation_runs_in_the_pipeline_and_changes_images():
    from lab import augment

    hp = validate(augment_rotation=0.2, augment_zoom=0.3)
    data = datasets.load("digits")
    aug = augment.build(hp, data.look)
    assert [layer.name for layer in aug.layers][0].startswith("random_rotation")
    plain = next(iter(training.make_train_pipeline(data.x[:64], data.y[:64], 64, seed=1)))[0].numpy()
    moved = next(iter(training.make_train_pipeline(data.x[:64], data.y[:64], 64, seed=1, augmenter=aug)))[0].numpy()
    assert plain.shape == moved.shape and not np.allclose(plain, moved)
    assert augment.build(validate(), data.look) is None


@pytest.mark.slow
def test_a_batch_larger_than_a_small_dataset_is_lowered_with_a_note(runtime):
    full = datasets.load("digits")
    keep = np.concatenate([np.flatnonzero(full.y == c)[:12] for c in (0, 1)])
    tiny = datasets.Dataset("tiny", full.x[keep], full.y[keep], ("0", "1"), full.look)
    log = training.TrainingLog()
    result = training.fit(validate(epochs=3, batch_size=64), runtime, log, data=tiny)
    assert "lowered from 64 to 20" in log.progress.note  # 24 images, 2 per class held out
    assert [r["step"] for r in log.rows if "val_accuracy" in r] == [1, 2, 3]  # one full-batch step an epoch
    assert not result.stopped and all(np.isfinite(r["loss"]) for r in log.rows)


# -- every training image, every epoch (issue 8, item 2) -----------------------------------------
def indexed_images(n: int) -> np.ndarray:
    """n one-pixel images whose pixel value is their index (so a batch says which images it holds)."""
    return np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)


def epoch_indices(ds) -> list[np.ndarray]:
    return [np.rint(b[0].numpy().reshape(len(b[0]), -1)[:, 0] * 255).astype(int) for b in ds]


def test_one_epoch_of_the_train_pipeline_holds_every_image_in_full_batches():
    x = indexed_images(48)
    ds = training.make_train_pipeline(x, np.arange(48), 32, seed=0)
    assert int(ds.cardinality()) == training.steps_per_epoch(48, 32) == 2
    orders = []
    for _ in range(3):  # each epoch: every image, batches of 32, labels still with their images
        batches = list(ds)
        assert [tuple(b[0].shape) for b in batches] == [(32, 1, 1, 1)] * 2
        idx = epoch_indices(batches)
        assert all(np.array_equal(i, b[1].numpy()) for i, b in zip(idx, batches))
        assert set(np.concatenate(idx)) == set(range(48))
        assert len(set(idx[-1])) == 32  # the top-up does not repeat an image within its batch
        orders.append(np.concatenate(idx))
    assert not np.array_equal(orders[0], orders[1])  # reshuffled each epoch


def test_the_feature_pipeline_holds_every_vector_in_the_image_pipelines_order():
    feats = np.arange(48, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    train, _ = training.make_feature_pipelines(feats, np.arange(48), feats[:5], np.arange(5), 32, seed=4)
    images = training.make_train_pipeline(indexed_images(48), np.arange(48), 32, seed=4)
    assert int(train.cardinality()) == 2
    got = [b[0].numpy()[:, 0].astype(int) for b in train]
    assert [len(b) for b in got] == [32, 32] and set(np.concatenate(got)) == set(range(48))
    # the cached-features head sees the same batches as training through the backbone would
    assert all(np.array_equal(a, b) for a, b in zip(got, epoch_indices(images)))


def test_mixup_on_a_topped_up_batch_mixes_only_real_images():
    from lab import augment

    data = datasets.load("digits")
    hp = validate(augment_mixup=0.4)
    aug = augment.build(hp, data.look, data.num_classes)
    ds = training.make_train_pipeline(data.x[:40], data.y[:40], 32, seed=2, augmenter=aug)
    batches = list(ds)
    assert [tuple(b[1].shape) for b in batches] == [(32, 10)] * 2
    for _, y in batches:  # soft labels of real images: rows sum to 1 (no zero-weight filler)
        assert np.allclose(y.numpy().sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_fit_trains_every_image_each_epoch_48_images_at_batch_32_is_two_steps(runtime):
    full = datasets.load("digits")
    keep = np.concatenate([np.flatnonzero(full.y == c)[:30] for c in (0, 1)])
    small = datasets.Dataset("small", full.x[keep], full.y[keep], ("0", "1"), full.look)
    hp = validate(epochs=3, batch_size=32)
    assert len(datasets.split(small, hp.validation_split, hp.seed)[0]) == 48
    log = training.TrainingLog()
    result = training.fit(hp, runtime, log, data=small)
    assert log.progress.steps_per_epoch == 2
    assert int(result.model.optimizer.iterations) == 3 * 2  # batches actually trained, not only counted
    assert [r["step"] for r in log.rows if "val_accuracy" in r] == [2, 4, 6]


# -- the training curve: the mean since the previous point, no sawtooth (issue 8, item 5) -----------
class FakeModel:
    stop_training = False
    weights = ()


def drive(callback, running_means: list[list[float]], calls_every: int = 1):
    """Feed a MetricsCallback Keras-style running means (one list per epoch, one value per step)."""
    callback.set_model(FakeModel())
    callback.on_train_begin()
    for epoch, means in enumerate(running_means):
        callback.on_epoch_begin(epoch)
        for end in range(calls_every - 1, len(means) + calls_every - 1, calls_every):
            m = means[min(end, len(means) - 1)]  # a short last execution: Keras passes its nominal end step
            callback.on_train_batch_end(end, {"loss": m, "accuracy": m / 100})
        callback.on_epoch_end(epoch, {"loss": means[-1], "accuracy": means[-1] / 100, "val_loss": 1.0,
                                      "val_accuracy": 0.5})


def running(values):
    return list(np.cumsum(values) / np.arange(1, len(values) + 1))


@pytest.mark.parametrize("calls_every", [1, 3, 7])
def test_callback_plots_the_mean_since_the_previous_point_from_keras_running_means(calls_every):
    steps = 20
    per_step = np.arange(2 * steps, dtype=float)  # step g's loss is g: a straight line, no epochs in it
    log = training.TrainingLog()
    drive(training.MetricsCallback(log, steps, 8), [running(per_step[:steps]), running(per_step[steps:])],
          calls_every)
    prev = 0
    for row in log.rows:
        expected = per_step[prev:row["step"]].mean()
        assert row["loss"] == pytest.approx(expected) and row["accuracy"] == pytest.approx(expected / 100), row
        prev = row["step"]
    assert [r["step"] for r in log.rows if "val_loss" in r] == [steps, 2 * steps]
    losses = [r["loss"] for r in log.rows]
    assert losses == sorted(losses)  # rises steadily across the epoch boundary: no sawtooth


def test_callback_interval_mean_never_leaves_the_metric_range():
    log = training.TrainingLog()
    # float32 running means of a loss that reaches ~0: rounding could draw it below zero
    values = np.float32([1.0] * 10 + [1e-9] * 10)
    means = list(np.float32(np.cumsum(values, dtype=np.float32) / np.arange(1, 21, dtype=np.float32)))
    drive(training.MetricsCallback(log, 20, 8), [means])
    assert all(r["loss"] >= 0 and 0 <= r["accuracy"] <= 1 for r in log.rows)


def stepped_loss_run(steps_per_execution: int, steps: int = 10, epochs: int = 3, batch: int = 4, lagged: bool = False):
    """A real Keras fit whose loss at (global, 0-based) step g is exactly g.

    Each batch's labels are its global step number and the loss is the labels' mean (its gradient
    is zero). The data is fed as the lab feeds it: a dataset of known length, iterated anew each
    epoch, so Keras' running means restart every epoch. The step number is epoch * steps + the
    batch's index, written on the host as the batches are made: this works under every backend (a
    loss reading optimizer.iterations sees a constant under JAX's traced, stateless step), and a
    batch Keras takes early to learn the data's shape does not shift the count.
    """
    epoch = [0]  # set by on_epoch_begin, before Keras opens the epoch's iterator

    def batches():
        for i in range(steps):
            yield np.zeros((batch, 1), np.float32), np.full((batch,), epoch[0] * steps + i, np.float32)

    spec = (tf.TensorSpec((batch, 1), tf.float32), tf.TensorSpec((batch,), tf.float32))
    ds = tf.data.Dataset.from_generator(batches, output_signature=spec).apply(
        tf.data.experimental.assert_cardinality(steps))
    val = tf.data.Dataset.from_tensors((np.zeros((batch, 1), np.float32), np.zeros((batch,), np.float32)))
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    def step_number(y, p):
        return keras.ops.reshape(y, (-1,)) + 0.0 * keras.ops.reshape(p, (-1,))

    model.compile(optimizer="sgd", loss=step_number, steps_per_execution=steps_per_execution)
    log = training.TrainingLog()
    count_epochs = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs=None: epoch.__setitem__(0, e))
    callbacks = [count_epochs, training.MetricsCallback(log, steps, batch)]
    if lagged:  # as the lab fits: logs handed over unread, each point read late (lab.feed)
        callbacks = feed.LateReadCallbacks(callbacks, model, epochs, steps)
    model.fit(ds, epochs=epochs, validation_data=val, callbacks=callbacks, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations) == steps * epochs
    return log.rows


@pytest.mark.slow
@pytest.mark.parametrize("spe,lagged", [(1, False), (3, False), (1, True), (3, True)])
def test_a_real_fit_with_a_known_loss_per_step_plots_each_intervals_mean(spe, lagged):
    rows = stepped_loss_run(spe, lagged=lagged)
    assert [r["step"] for r in rows if "val_loss" in r] == [10, 20, 30]
    prev = 0
    for row in rows:
        assert row["loss"] == pytest.approx((prev + row["step"] - 1) / 2), (row, prev)  # mean of steps prev..step-1
        prev = row["step"]
    losses = [r["loss"] for r in rows]
    assert losses == sorted(losses), losses  # Keras' running means would fall back at 10 and 20
