"""Training: the lab's fit against a bare model.fit, the callback's records, Stop and divergence."""

import threading

import keras
import numpy as np
import pytest

from lab import datasets, images, training
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
    n = len(tr) // hp.batch_size * hp.batch_size  # the lab drops the ragged last batch
    hist = model.fit(x[tr][:n], data.y[tr][:n], batch_size=hp.batch_size, epochs=hp.epochs,
                     validation_data=(x[va], data.y[va]), verbose=0)
    return hist.history["val_accuracy"][-1]


@pytest.mark.parametrize("model", ["mlp", "small_cnn"])
def test_lab_reaches_the_accuracy_of_a_bare_model_fit(runtime, model):
    hp = validate(model=model, epochs=8)
    log = training.TrainingLog()
    training.fit(hp, runtime, log)
    lab_acc = log.rows[-1]["val_accuracy"]
    bare_acc = bare_fit_val_accuracy(hp)
    assert bare_acc > 0.9  # the reference itself learned
    assert abs(lab_acc - bare_acc) < 0.03, (lab_acc, bare_acc)


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
    assert log.progress["images_per_sec"] > 0 and not result.stopped and not result.diverged
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


def test_stop_flag_ends_training_mid_epoch_and_keeps_the_model(runtime):
    log = training.TrainingLog()
    log.rows = StopAfter(log)
    result = training.fit(validate(epochs=100), runtime, log)
    assert result.stopped and result.model is not None
    assert len(log.rows) == 2 and log.rows[-1]["epoch"] < 1
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


def test_a_diverging_loss_stops_with_the_last_finite_weights(runtime, monkeypatch):
    # Learning rates a student can pick rarely reach NaN on digits (the loss is clipped), so
    # the schedule makes the blow-up certain: sane for two epochs, absurd from step 100 on.
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([100], [3e-3, 1e9])
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


def test_a_batch_larger_than_a_small_dataset_is_lowered_with_a_note(runtime):
    full = datasets.load("digits")
    keep = np.concatenate([np.flatnonzero(full.y == c)[:12] for c in (0, 1)])
    tiny = datasets.Dataset("tiny", full.x[keep], full.y[keep], ("0", "1"), full.look)
    log = training.TrainingLog()
    result = training.fit(validate(epochs=3, batch_size=64), runtime, log, data=tiny)
    assert "lowered from 64 to 20" in log.progress["note"]  # 24 images, 2 per class held out
    assert [r["step"] for r in log.rows if "val_accuracy" in r] == [1, 2, 3]  # one full-batch step an epoch
    assert not result.stopped and all(np.isfinite(r["loss"]) for r in log.rows)
