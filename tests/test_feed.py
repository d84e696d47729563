"""Feeding the device (lab/feed.py): images kept on the device, metrics read one call late (issue 19)."""

import keras
import numpy as np
import pytest

from lab import datasets, feed, pipeline, training
from lab.hparams import validate


def test_device_images_give_the_pipelines_scaled_images_for_their_indices(runtime):
    x = np.random.default_rng(0).integers(0, 256, size=(50, 6, 5, 3), dtype=np.uint8)
    layer = feed.DeviceImages(x, feed.store_dtype(runtime))
    idx = np.array([49, 0, 7, 7, 23], np.int32)
    got = keras.ops.convert_to_numpy(layer(idx))
    want = pipeline.to_model_range(x[idx]).numpy()
    assert got.dtype == np.float32 and np.array_equal(got, want)  # bit for bit: the Try tab's scaling


def test_the_index_pipelines_hold_the_image_pipelines_epochs_index_for_image():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(70, 4, 4, 1), dtype=np.uint8)
    y = rng.integers(0, 3, size=70)
    train_idx, val_idx = np.arange(5, 53), np.arange(53, 70)  # a split does not start at 0
    idx_train, idx_val = feed.index_pipelines(train_idx, y[train_idx], val_idx, y[val_idx], 32, seed=3)
    img_train = pipeline.make_train_pipeline(x[train_idx], y[train_idx], 32, seed=3)
    for _ in range(2):  # two epochs: reshuffled alike
        pairs = list(zip(idx_train, img_train))
        assert len(pairs) == 2
        for (i, yi), (im, ym) in pairs:
            i = i.numpy()
            assert i.shape == (32,) and np.array_equal(yi.numpy(), ym.numpy()) and np.array_equal(y[i], yi.numpy())
            assert np.array_equal(pipeline.to_model_range(x[i]).numpy(), im.numpy())
    (vi, vy, vw), = list(idx_val)  # 17 validation images padded to one batch of 32 with zero weight
    assert vi.shape == (32,) and set(vi.numpy()[:17]) == set(val_idx) and vw.numpy().sum() == 17


class Recorder(keras.callbacks.Callback):
    """Notes which step's logs it was handed, and when Stop was checked."""

    def __init__(self):
        super().__init__()
        self.seen, self.checks, self.test_logs = [], 0, []

    def check_stop(self):
        self.checks += 1

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append((batch, logs["loss"]))

    def on_test_batch_end(self, batch, logs=None):
        self.test_logs.append(logs)


class Ready:
    """A device value: reading it (float) would wait for its step; counts the reads."""

    reads: list[int] = []

    def __init__(self, step):
        self.step = step

    def __float__(self):
        Ready.reads.append(self.step)
        return float(self.step)


def test_lagged_callbacks_read_each_calls_logs_one_call_late_and_check_stop_at_once():
    rec = Recorder()
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    cbs = feed.LaggedCallbacks([rec], model, epochs=1, steps=4)
    Ready.reads = []
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    for step in range(4):
        cbs.on_train_batch_end(step, {"loss": Ready(step)})
        assert rec.checks == step + 1  # Stop: checked at every call
        # the newest step's logs are never read while its step may still run
        assert Ready.reads == list(range(step)) and [b for b, _ in rec.seen] == list(range(step))
    cbs.on_test_batch_end(0, {"loss": Ready(99)})
    assert rec.test_logs == [None] and 99 not in Ready.reads  # validation: no read per batch
    cbs.on_epoch_end(0, {"loss": 3.0})
    assert rec.seen == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0)]  # the last one at the epoch's end, in order
    cbs.on_train_end()
    assert len(rec.seen) == 4


@pytest.mark.slow
@pytest.mark.parametrize("resident", [True, False])
def test_a_job_trains_from_the_device_or_streams_and_saves_only_the_model(runtime, monkeypatch, resident):
    monkeypatch.setattr(training, "RESIDENT", resident)
    hp = validate(model="small_cnn", epochs=3)
    log = training.TrainingLog()
    result = training.fit(hp, runtime, log)
    assert log.progress.input == ("on the device" if resident else "streamed from the host")
    assert log.rows[-1]["val_accuracy"] > 0.85
    assert [r["step"] for r in log.rows if "val_loss" in r] == [45, 90, 135]
    # the trainer's images never reach the model that is saved
    assert not any(isinstance(layer, feed.DeviceImages) for layer in result.model._flatten_layers())
    data = datasets.load("digits")
    assert sum(w.size for w in result.model.get_weights()) < data.x.size


def test_a_dataset_larger_than_the_limit_streams(runtime, monkeypatch):
    x = np.zeros((100, 32, 32, 3), np.uint8)  # 300 KiB as uint8
    monkeypatch.setenv(feed.RESIDENT_ENV, "0.25")
    assert not feed.resident(x, runtime)
    monkeypatch.setenv(feed.RESIDENT_ENV, "1")
    assert feed.resident(x, runtime)
    monkeypatch.setenv(feed.RESIDENT_ENV, "0")  # off
    assert not feed.resident(x, runtime)
