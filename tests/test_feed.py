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


def epoch_of(ds) -> list[tuple]:
    """One epoch of a tf.data pipeline or an IndexBatches, as numpy tuples (what Keras' loop pulls)."""
    if isinstance(ds, feed.IndexBatches):
        batches = [ds[i] for i in range(len(ds))]
        ds.on_epoch_end()  # as Keras' loop does after each epoch
        return batches
    return [tuple(t.numpy() for t in b) for b in ds]


def test_the_index_pipelines_give_every_index_each_epoch_in_full_reshuffled_batches():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(70, 4, 4, 1), dtype=np.uint8)
    y = rng.integers(0, 3, size=70)
    train_idx, val_idx = np.arange(5, 53), np.arange(53, 70)  # a split does not start at 0
    train, val = feed.index_pipelines(train_idx, y[train_idx], val_idx, y[val_idx], 32, seed=3)
    orders = []
    for _ in range(3):
        epoch = epoch_of(train)
        assert [b[0].shape for b in epoch] == [(32,)] * 2  # fixed shapes: 48 images in 2 batches of 32
        for i, yi in epoch:
            assert np.array_equal(y[i], yi) and len(set(i)) == 32  # labels with their images; no repeat in a batch
        assert set(np.concatenate([b[0] for b in epoch])) == set(train_idx)
        orders.append(np.concatenate([b[0] for b in epoch]))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    again = feed.index_pipelines(train_idx, y[train_idx], val_idx, y[val_idx], 32, seed=3)[0]
    if isinstance(again, feed.IndexBatches):  # numpy's order comes from (seed, epoch) alone: the same run again
        assert np.array_equal(np.concatenate([b[0] for b in epoch_of(again)]), orders[0])
    (vi, vy, vw), = epoch_of(val)  # 17 validation images padded to one batch of 32 with zero weight
    assert vi.shape == (32,) and set(vi[:17]) == set(val_idx) and vw.sum() == 17 and np.array_equal(y[vi], vy)


def test_on_tensorflow_the_index_pipeline_is_the_image_pipeline_index_for_image():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(70, 4, 4, 1), dtype=np.uint8)
    y = rng.integers(0, 3, size=70)
    train_idx = np.arange(5, 53)
    idx_train = feed._whole_epoch_batches(train_idx.astype(np.int32), y[train_idx], 32, seed=3)
    img_train = pipeline.make_train_pipeline(x[train_idx], y[train_idx], 32, seed=3)
    for _ in range(2):  # two epochs: reshuffled alike
        for (i, yi), (im, ym) in zip(idx_train, img_train):
            assert np.array_equal(yi.numpy(), ym.numpy())
            assert np.array_equal(pipeline.to_model_range(x[i.numpy()]).numpy(), im.numpy())


class Ready:
    """A device value: reading it (float) would wait for its step; notes which steps were read."""

    reads: list[int] = []

    def __init__(self, step):
        self.step = step

    def __float__(self):
        Ready.reads.append(self.step)
        return float(self.step)


def test_the_chart_reads_a_points_logs_only_when_the_next_point_is_due_and_checks_stop_every_step():
    log = training.TrainingLog()
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    cbs = feed.LateReadCallbacks([training.MetricsCallback(log, 20, 8)], model, epochs=1, steps=20)
    Ready.reads = []
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    for step in range(19):
        model.stop_training = False
        if step == 11:  # not a point's step
            log.stop.set()
        cbs.on_train_batch_end(step, {"loss": Ready(step), "accuracy": Ready(step)})
        assert model.stop_training == (step == 11)  # Stop: checked at every step, never late
        log.stop.clear()
        # points are due after steps 2, 4, ..., 18 (every 2 of 20): only the previous point's logs
        # are read, never the newest step's, which may still be running
        due = [s for s in range(1, step + 1, 2)]
        assert sorted(set(Ready.reads)) == due[:-1], (step, Ready.reads)
        assert [r["step"] for r in log.rows] == [s + 1 for s in due[:-1]]
    cbs.on_test_batch_end(0, {"loss": Ready(99)})
    assert 99 not in Ready.reads  # validation: no read per batch
    cbs.on_epoch_end(0, {"loss": 19.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5})
    assert [r["step"] for r in log.rows] == list(range(2, 21, 2))  # every point, in order, the last with validation
    assert "val_loss" in log.rows[-1] and all("val_loss" not in r for r in log.rows[:-1])


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


def test_augmentation_runs_on_the_device_only_where_every_layer_can_and_it_pays(runtime, monkeypatch):
    from dataclasses import replace

    from lab import augment
    from lab.images import ImageLook

    grey, colour = ImageLook(8, 8, 1, light_on_dark=True), ImageLook(32, 32, 3)
    geometric = augment.build(validate(augment_rotation=0.1, augment_flip=True, augment_erasing=0.2), grey)
    jax_gpu, jax_cpu = replace(runtime, backend="jax", device_kind="gpu"), replace(runtime, backend="jax", device_kind="cpu")
    tf_gpu = replace(runtime, backend="tensorflow", device_kind="GPU")
    tf_two = replace(runtime, backend="tensorflow", device_count=2, strategy=object())
    monkeypatch.delenv(feed.DEVICE_AUGMENT_ENV, raising=False)  # "auto"
    assert feed.device_augments(geometric, jax_gpu)
    assert not feed.device_augments(geometric, jax_cpu)  # a CPU's tf.data maps already run beside the step
    assert not feed.device_augments(geometric, tf_gpu)  # TensorFlow's image transforms would switch XLA off
    assert not feed.device_augments(None, jax_gpu)
    # one layer without a device version keeps the whole augmentation on the host
    mixer = augment.build(validate(augment_rotation=0.1, augment_mixup=0.2), grey, num_classes=10)
    rand = augment.build(validate(augment_flip=True, augment_randaugment=0.3), colour)
    assert not feed.device_augments(mixer, jax_gpu) and not feed.device_augments(rand, jax_gpu)
    assert feed.device_augments(augment.build(validate(augment_color=0.2, augment_contrast=0.2), colour), jax_gpu)
    monkeypatch.setenv(feed.DEVICE_AUGMENT_ENV, "1")
    assert feed.device_augments(geometric, jax_cpu) and feed.device_augments(geometric, tf_gpu)
    assert not feed.device_augments(geometric, tf_two)  # mirrored random state: one transform for every replica
    assert not feed.device_augments(mixer, jax_cpu)
    monkeypatch.setenv(feed.DEVICE_AUGMENT_ENV, "0")
    assert not feed.device_augments(geometric, jax_gpu)


@pytest.mark.slow
def test_an_augmented_job_on_the_device_trains_repeatably_and_validates_the_pictures_as_they_are(runtime, monkeypatch):
    monkeypatch.setenv(feed.DEVICE_AUGMENT_ENV, "1")
    hp = validate(epochs=2, augment_rotation=0.05, augment_zoom=0.1, augment_translate=0.1)
    runs = []
    for settings in (hp, hp, validate(epochs=2)):
        log = training.TrainingLog()
        runs.append((training.fit(settings, runtime, log), log.rows, log.progress.input))
    (result, rows, where), (_, again, _), (_, plain, _) = runs
    assert where == "on the device, augmented there"
    assert rows == again  # one seed, one run
    assert [r["loss"] for r in rows] != [r["loss"] for r in plain]  # the augmentation changed what was trained
    assert rows[-1]["val_accuracy"] > 0.8
    data = datasets.load("digits")
    _, va = datasets.split(data, hp.validation_split, hp.seed)
    probs = result.model.predict(data.x[va] / 255.0, verbose=0)
    assert float(np.mean(probs.argmax(1) == data.y[va])) == pytest.approx(rows[-1]["val_accuracy"], abs=1e-6)
    # what is saved is the student's model, never the trainer around it
    saved = {type(layer).__name__ for layer in result.model._flatten_layers()}
    assert not saved & {"RandomRotation", "RandomZoom", "RandomTranslation", "DeviceImages"}
