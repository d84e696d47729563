"""Transfer learning: the head trains on cached backbone features, fine-tuning continues the chart.

Random-weight backbones (VISION_LAB_PRETRAINED=0) keep this offline. A random MobileNetV3Small
maps every image to ~1e-10 (its activations vanish without ImageNet weights), so the checks that
need features that tell digits apart use a tiny random conv backbone registered as a transfer
model; MobileNetV3Small checks the real plumbing (grayscale into RGB, save/load, fine-tuning).
"""

import keras
import numpy as np
import pytest

from lab import datasets, features, training
from lab.hparams import validate
from models import MODELS, ModelSpec, transfer
from tests.test_training import StopAfter

TINY = "tiny_transfer"


pytestmark = pytest.mark.slow  # trains real models


def build_tiny_transfer(input_shape, num_classes, hp=None):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)  # pixels 0..255 in, like keras.applications
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    # random ReLU features of the whole image; as a 1x1 map, the model's average pooling keeps them all
    x = keras.layers.Dense(128, activation="relu")(keras.layers.Flatten()(x))
    base = keras.Model(inputs, keras.layers.Reshape((1, 1, 128))(x), name="tiny_backbone")
    base.trainable = False
    return transfer.transfer_model(base, input_shape, num_classes, 16, TINY)


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setenv(transfer.PRETRAINED_ENV, "0")
    monkeypatch.setitem(MODELS, TINY, ModelSpec(TINY, "a tiny random conv backbone, for tests", build_tiny_transfer, transfer=True))
    features.clear()
    yield
    features.clear()


@pytest.fixture
def computed(monkeypatch):
    """Counts the times the backbone features are computed (not taken from the cache)."""
    calls = []
    real = features.compute

    def counting(extractor, x, log):
        calls.append(len(x))
        return real(extractor, x, log)

    monkeypatch.setattr(features, "compute", counting)
    return calls


@pytest.fixture(scope="module")
def digits():
    d = datasets.load("digits")
    return datasets.Dataset("digits", d.x[:480], d.y[:480], d.class_names, d.look)  # a quarter: the CPU is slow


def images(data):
    return data.x.astype("float32") / 255.0


def test_head_on_cached_features_trains_exactly_like_training_through_the_frozen_backbone(runtime, digits, computed, monkeypatch):
    hp = validate(model=TINY, epochs=2, batch_size=8, learning_rate=0.01)  # 48 steps: 4 a head call
    cached_log = training.TrainingLog()
    training.fit(hp, runtime, cached_log, digits)
    assert computed == [len(digits.x)]
    monkeypatch.setattr(training, "FEATURE_CACHE", False)  # through the backbone, on the same images
    image_log = training.TrainingLog()
    training.fit(hp, runtime, image_log, digits)
    assert computed == [len(digits.x)]
    rows, reference = cached_log.rows, image_log.rows
    assert [(r["step"], r["epoch"], sorted(r)) for r in rows] == [(r["step"], r["epoch"], sorted(r)) for r in reference]
    # same initial weights, batches and dropout: the same numbers, up to float rounding
    for a, b in zip(rows, reference):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3, abs=1e-4)
    assert rows[-1]["val_accuracy"] == pytest.approx(reference[-1]["val_accuracy"], abs=0.01)
    assert rows[-1]["val_accuracy"] > 0.7  # and it learned


def test_grayscale_digits_into_mobilenet_save_and_load_as_a_full_image_model(runtime, digits, computed, tmp_path):
    hp = validate(model="mobilenet_v3_small", epochs=1)
    log = training.TrainingLog()
    result = training.fit(hp, runtime, log, digits)
    assert computed == [len(digits.x)] and [r["epoch"] for r in log.rows if "val_loss" in r] == [1.0]
    assert log.progress.phase == "training" and log.progress.fraction == 1.0
    model = result.model
    assert model.input_shape == (None, 8, 8, 1)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    probs = loaded.predict(images(digits)[:5], verbose=0)
    assert probs.shape == (5, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(probs, model.predict(images(digits)[:5], verbose=0), atol=1e-6)
    # the trained head is the saved model's own: head(features) == model(images)
    feats = transfer.feature_extractor(model).predict(images(digits)[:5], verbose=0)
    assert np.allclose(transfer.head(model).predict(feats, verbose=0), probs, atol=1e-6)
    training.fit(hp, runtime, training.TrainingLog(), digits)  # a second student, same settings
    assert computed == [len(digits.x)]  # the cache answered


def test_the_cache_tells_backbones_and_datasets_apart(runtime, digits, computed):
    training.fit(validate(model=TINY, epochs=1), runtime, training.TrainingLog(), digits)
    training.fit(validate(model=TINY, epochs=1, learning_rate=0.01), runtime, training.TrainingLog(), digits)
    assert len(computed) == 1  # only the head's settings changed
    training.fit(validate(model=TINY, epochs=1, seed=7), runtime, training.TrainingLog(), digits)
    assert len(computed) == 2  # another seed, another random backbone: its own features
    fewer = datasets.Dataset("digits", digits.x[:400], digits.y[:400], digits.class_names, digits.look)
    training.fit(validate(model=TINY, epochs=1), runtime, training.TrainingLog(), fewer)
    assert computed[-1] == 400


def test_fine_tuning_continues_the_chart_trains_only_the_top_layers_at_a_lower_rate(runtime, digits):
    # the tiny backbone's layers: input, rescaling, conv2d, batch_normalization, flatten, dense, reshape
    hp = validate(model=TINY, epochs=2, fine_tune_epochs=2, fine_tune_layers=4, learning_rate=0.02)
    log = training.TrainingLog()
    result = training.fit(hp, runtime, log, digits)
    steps = log.progress.steps_per_epoch
    val_rows = [r for r in log.rows if "val_loss" in r]
    assert [(r["epoch"], r["step"]) for r in val_rows] == [(e, e * steps) for e in (1.0, 2.0, 3.0, 4.0)]
    assert [r["step"] for r in log.rows] == sorted({r["step"] for r in log.rows})  # one axis, no repeats
    assert log.progress.phase == "fine-tuning" and log.progress.epoch == 4.0
    assert float(result.model.optimizer.learning_rate) == pytest.approx(0.02 * training.FINE_TUNE_LR_FACTOR)
    # compared with the same random backbone before training (same seed): only the top Dense moved
    keras.utils.set_random_seed(hp.seed)
    initial = transfer.backbone_of(MODELS[TINY].build(digits.look.shape(), 10, hp))
    base = transfer.backbone_of(result.model)
    moved = [layer.name for layer, start in zip(base.layers, initial.layers)
             if any(not np.array_equal(w, v) for w, v in zip(layer.get_weights(), start.get_weights()))]
    assert moved == [layer.name for layer in base.layers if isinstance(layer, keras.layers.Dense)]


def test_mobilenet_unfreezes_its_top_layers_but_no_batch_norm():
    model = MODELS["mobilenet_v3_small"].build((8, 8, 1), 10, None)
    base = transfer.backbone_of(model)
    unfrozen = transfer.unfreeze_top(model, 20)
    trainable = [layer for layer in base.layers if layer.trainable and layer.weights]
    assert [layer.name for layer in trainable] == unfrozen and unfrozen
    top = {id(layer) for layer in base.layers[-20:]}
    assert all(id(layer) in top for layer in trainable)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in base.layers[-20:])
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    assert {id(w) for w in model.trainable_weights} == {id(w) for layer in trainable for w in layer.trainable_weights} | {
        id(w) for w in model.get_layer("classifier").trainable_weights}


def test_augmentation_trains_on_images_through_the_frozen_backbone(runtime, digits, computed):
    log = training.TrainingLog()
    result = training.fit(validate(model=TINY, epochs=1, augment_zoom=0.2), runtime, log, digits)
    assert computed == [] and log.progress.note == training.CACHE_OFF_NOTE
    assert [r["epoch"] for r in log.rows if "val_loss" in r] == [1.0] and not result.stopped


def test_stop_during_head_training_keeps_a_usable_partial_model(runtime, digits):
    log = training.TrainingLog()
    log.rows = StopAfter(log)
    result = training.fit(validate(model=TINY, epochs=50, fine_tune_epochs=5), runtime, log, digits)
    # the first point (read when the next was due: two so far), then where training stopped
    assert result.stopped and 2 <= len(log.rows) <= 3 and log.rows[-1]["epoch"] < 1
    assert "val_accuracy" not in log.rows[-1]  # a cut-short validation is not shown
    assert log.progress.phase == "training"  # fine-tuning never started
    probs = result.model.predict(images(digits)[:4], verbose=0)
    assert probs.shape == (4, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_stop_while_computing_features_caches_nothing(runtime, digits, computed):
    log = training.TrainingLog()
    log.stop.set()
    result = training.fit(validate(model=TINY, epochs=1), runtime, log, digits)
    assert result.stopped and log.rows == [] and log.progress.fraction < 1.0
    training.fit(validate(model=TINY, epochs=1), runtime, training.TrainingLog(), digits)
    assert len(computed) == 2


class BlowUpAfter(keras.optimizers.schedules.LearningRateSchedule):
    """A sane learning rate for `steps` steps (12 an epoch here), then an infinite one: NaN is certain."""

    def __init__(self, steps):
        self.steps = steps

    def __call__(self, step):
        return keras.ops.where(step < self.steps, 3e-3, float("inf"))


def test_a_diverging_head_keeps_the_last_finite_weights(runtime, digits, monkeypatch):
    monkeypatch.setitem(training.OPTIMIZERS, "sgd", lambda lr: keras.optimizers.SGD(BlowUpAfter(14)))
    log = training.TrainingLog()
    result = training.fit(validate(model=TINY, optimizer="sgd", epochs=20, fine_tune_epochs=2), runtime, log, digits)
    assert result.diverged and 1.0 <= log.rows[-1]["epoch"] < 4 and log.progress.phase == "training"
    assert all(np.isfinite(w).all() for w in result.model.get_weights())
    assert np.isfinite(result.model.predict(images(digits)[:4], verbose=0)).all()
