"""Augmentation catalogue: every entry changes images within [0, 1], MixUp/CutMix give soft labels,
keras-cv is optional, training runs with augmentation on both backends, and the preview grid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from lab import augment, datasets, feed, pipeline, training
from lab.hparams import FIELD_BY_NAME, HParams, validate
from lab.images import ImageLook

ROOT = Path(__file__).resolve().parent.parent
RGB_LOOK = ImageLook(16, 16, 3)
HAS_KERAS_CV = augment._keras_cv() is not None


def strongest(name: str) -> HParams:
    """Settings with only `name` on, at the top of its range (the hardest test of the [0, 1] range)."""
    f = FIELD_BY_NAME[name]
    return validate(**{name: True if f.kind is bool else f.high})


def rgb_data(n: int = 32) -> datasets.Dataset:
    """Smooth random colour images (gradients plus noise), so hue and channel changes are visible."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 16)[None, :, None, None] * rng.uniform(0, 255, (n, 1, 1, 3))
    x = np.clip(ramp + rng.normal(0, 20, (n, 16, 16, 3)), 0, 255).astype(np.uint8)
    return datasets.Dataset("rgb", x, np.arange(n) % 4, ("a", "b", "c", "d"), RGB_LOOK)


def run(aug: augment.Augmenter, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(original as float, augmented, labels) for one batch through the pipeline's steps, unshuffled."""
    ds = tf.data.Dataset.from_tensors((x, y)).map(pipeline.scale_images)
    (before, _), = ds
    (after, labels), = aug.apply(ds)
    return before.numpy(), after.numpy(), labels.numpy()


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


@pytest.fixture
def without_keras_cv(monkeypatch):
    """keras-cv as if it were not installed (the cached import answers None)."""
    monkeypatch.setattr(augment, "_keras_cv", lambda: None)


@pytest.mark.parametrize("name", list(augment.AUGMENTATIONS))
def test_each_augmentation_changes_images_and_keeps_shape_dtype_and_range(name, digits):
    entry = augment.AUGMENTATIONS[name]
    if entry.needs_keras_cv and not HAS_KERAS_CV:
        pytest.skip("keras-cv is not installed")
    data = rgb_data() if entry.colour_only else digits
    aug = augment.build(strongest(name), data.look, data.num_classes)
    assert [type(layer) for layer in aug.layers] == [type(entry.factory(0.5, 0, data.look))]
    before, after, _ = run(aug, data.x[:32], data.y[:32])
    assert after.shape == before.shape and after.dtype == np.float32
    assert 0.0 <= after.min() and after.max() <= 1.0
    assert np.abs(after - before).max() > 0.1, f"{name} did not change the images"


def test_fill_is_black_for_light_on_dark_digits_and_reflection_otherwise(digits):
    layer = augment.AUGMENTATIONS["augment_rotation"].factory
    assert layer(0.1, 0, digits.look).fill_mode == "constant"
    assert layer(0.1, 0, RGB_LOOK).fill_mode == "reflect"


def test_off_means_no_augmenter_and_colour_only_ones_skip_grayscale(digits):
    assert augment.build(HParams(), digits.look) is None
    assert not augment.is_active(HParams())
    colour_only = validate(augment_color=0.5, augment_channel_shuffle=True)
    assert augment.build(colour_only, digits.look) is None  # no crash on one channel, no effect
    assert augment.is_active(colour_only) and not augment.is_active(colour_only, digits.look)
    assert augment.build(validate(augment_color=0.5), RGB_LOOK) is not None


def test_mixup_and_cutmix_give_soft_labels_that_sum_to_one(digits):
    for name in ("augment_mixup", "augment_cutmix"):
        hp = validate(**{name: 1.0, "augment_rotation": 0.1})
        assert augment.mixes(hp)
        aug = augment.build(hp, digits.look, digits.num_classes)
        before, after, labels = run(aug, digits.x[:64], digits.y[:64])
        assert labels.shape == (64, digits.num_classes) and labels.dtype == np.float32
        assert np.allclose(labels.sum(axis=1), 1.0, atol=1e-5) and labels.min() >= 0
        assert (labels.max(axis=1) < 0.99).any(), f"{name}: no label was mixed"
        assert 0.0 <= after.min() and after.max() <= 1.0
    assert not augment.mixes(validate(augment_rotation=0.1))
    with pytest.raises(ValueError, match="num_classes"):
        augment.build(validate(augment_mixup=0.5), digits.look)


def test_without_keras_cv_its_augmentations_give_a_clear_error_and_the_others_work(without_keras_cv, digits):
    cv_only = [n for n, a in augment.AUGMENTATIONS.items() if a.needs_keras_cv]
    assert sorted(augment.unavailable()) == sorted(cv_only) and cv_only
    assert "pip install keras-cv" in augment.unavailable()["augment_gridmask"]
    assert set(augment.available()) == set(augment.AUGMENTATIONS) - set(cv_only)
    hp = validate(augment_gridmask=0.5, augment_rotation=0.1)
    for attempt in (lambda: augment.build(hp, digits.look), lambda: augment.preview_grid(digits, hp)):
        with pytest.raises(pipeline.TrainingError) as e:
            attempt()
        assert "augment_gridmask" in str(e.value) and "pip install keras-cv" in str(e.value)
        assert "Every other augmentation works" in str(e.value)
    aug = augment.build(validate(augment_rotation=0.1, augment_mixup=0.3), digits.look, digits.num_classes)
    assert len(aug.layers) == 2


def test_keras_cv_is_imported_once_even_when_it_fails(monkeypatch):
    calls = []

    def failing_import(name):
        calls.append(name)
        raise ImportError("No module named 'keras_cv'")

    monkeypatch.setattr(augment.importlib, "import_module", failing_import)
    augment._keras_cv.cache_clear()
    try:
        assert augment.unavailable() and augment.unavailable()
        assert calls == ["keras_cv"]
    finally:
        monkeypatch.undo()
        augment._keras_cv.cache_clear()  # the next caller imports the real thing again


@pytest.mark.slow
def test_training_with_mixup_records_finite_loss_and_true_validation_accuracy(runtime, digits):
    hp = validate(epochs=2, batch_size=64, augment_mixup=0.4)
    log = training.TrainingLog()
    result = training.fit(hp, runtime, log, data=digits)
    assert not result.diverged and all(np.isfinite(r["loss"]) for r in log.rows)
    # validation labels stay integers: val_accuracy is the plain accuracy over the held-out images
    _, va = datasets.split(digits, hp.validation_split, hp.seed)
    probs = result.model.predict(digits.x[va].astype("float32") / 255.0, verbose=0)
    val_rows = [r for r in log.rows if "val_accuracy" in r]
    assert len(val_rows) == 2
    assert val_rows[-1]["val_accuracy"] == pytest.approx(float(np.mean(probs.argmax(1) == digits.y[va])), abs=1e-4)


@pytest.mark.slow
def test_training_with_several_per_image_augmentations_and_cutmix(runtime, digits):
    hp = validate(epochs=1, batch_size=64, augment_rotation=0.05, augment_zoom=0.1, augment_translate=0.1,
                  augment_contrast=0.3, augment_brightness=0.2, augment_erasing=0.3, augment_cutmix=0.5)
    log = training.TrainingLog()
    result = training.fit(hp, runtime, log, data=digits)
    assert not result.diverged and log.rows and all(np.isfinite(r["loss"]) for r in log.rows)
    assert "val_accuracy" in log.rows[-1]


@pytest.mark.slow
@pytest.mark.parametrize("settings", [dict(augment_rotation=0.05, augment_flip=True, augment_contrast=0.2),
                                      dict(augment_zoom=0.1, augment_mixup=0.3)])
def test_one_seed_gives_one_run_with_augmentation_on_the_host(runtime, digits, monkeypatch, settings):
    # Parallel tf.data maps took the layers' random draws in thread order: the same settings gave
    # different curves (seen in 5 of 6 repeats), so a student could not tell a knob's effect from noise.
    monkeypatch.setenv(feed.DEVICE_AUGMENT_ENV, "0")
    hp = validate(epochs=1, **settings)
    runs = []
    for _ in range(3):
        log = training.TrainingLog()
        training.fit(hp, runtime, log, data=digits)
        assert log.progress.input == "streamed from the host"
        runs.append(log.rows)
    assert runs[0] == runs[1] == runs[2]
    log = training.TrainingLog()
    training.fit(validate(epochs=1, seed=hp.seed + 1, **settings), runtime, log, data=digits)
    assert log.rows != runs[0]  # (another seed, another run: the check can tell runs apart)


def test_preview_grid_shows_the_originals_then_augmented_copies(digits):
    hp = validate(augment_rotation=0.2, augment_zoom=0.2)
    grid = augment.preview_grid(digits, hp, images=3, versions=4)
    scale = 64 // 8
    tile_h, tile_w = 8 * scale + 4, 8 * scale + 4
    assert grid.dtype == np.uint8 and grid.ndim == 2  # grayscale: 2-D
    assert grid.shape == (3 * tile_h, 5 * tile_w + 6)

    def tile(g, row, col):  # back to the 8x8 image (one pixel per enlarged block)
        left = col * tile_w + (6 if col else 0) + 2
        return g[row * tile_h + 2: (row + 1) * tile_h - 2: scale, left: left + 8 * scale: scale]

    train_idx, _ = datasets.split(digits, hp.validation_split, hp.seed)
    firsts = [tile(grid, r, 0) for r in range(3)]
    assert all(any(np.array_equal(t, digits.x[i, ..., 0]) for i in train_idx) for t in firsts)
    assert any(not np.array_equal(tile(grid, r, c), firsts[r]) for r in range(3) for c in range(1, 5))
    # same seed, same training images; nothing on: every copy is the original
    plain = augment.preview_grid(digits, HParams(), images=3, versions=4)
    assert all(np.array_equal(tile(plain, r, 0), firsts[r]) for r in range(3))
    assert all(np.array_equal(tile(plain, r, c), firsts[r]) for r in range(3) for c in range(5))


def test_preview_grid_of_colour_images_with_mixing_is_rgb():
    data = rgb_data()
    grid = augment.preview_grid(data, validate(augment_color=0.8, augment_cutmix=1.0, validation_split=0.25),
                                images=2, versions=2)
    scale = 64 // 16
    assert grid.shape == (2 * (16 * scale + 4), 3 * (16 * scale + 4) + 6, 3)


def test_describe_says_what_is_on_in_plain_words(digits):
    assert augment.describe(HParams()) == augment.NO_AUGMENTATION
    line = augment.describe(validate(augment_rotation=0.25, augment_mixup=0.2))
    assert "rotated by up to ±90°" in line and "MixUp" in line and "\n" not in line
    grey = augment.describe(validate(augment_color=0.5), digits.look)
    assert grey.startswith("No augmentation") and "grayscale" in grey
    both = augment.describe(validate(augment_color=0.5, augment_flip=True), digits.look)
    assert "mirrored" in both and "Colour jitter" in both and "skipped" in both


JAX_SCRIPT = textwrap.dedent("""
    import json, numpy as np, keras
    from lab import augment, backend, datasets, training
    from lab.hparams import validate
    hp = validate(epochs=1, batch_size=64, augment_rotation=0.1, augment_randaugment=0.3,
                  augment_erasing=0.3, augment_mixup=0.3, augment_cutout=0.2 if augment._keras_cv() else 0.0)
    data = datasets.load("digits")
    aug = augment.build(hp, data.look, data.num_classes)
    x, y = next(iter(training.make_train_pipeline(data.x[:64], data.y[:64], 64, 0, aug)))
    log = training.TrainingLog()
    result = training.fit(hp, backend.runtime(), log, data=data)
    print(json.dumps({"backend": keras.backend.backend(), "min": float(np.min(x)), "max": float(np.max(x)),
                      "label_sums": np.asarray(y).sum(axis=1).round(4).tolist(),
                      "losses": [r["loss"] for r in log.rows], "val": log.rows[-1].get("val_accuracy")}))
""")


@pytest.mark.slow
def test_augmentation_and_mixup_training_work_on_the_jax_backend():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    assert 0.0 <= report["min"] and report["max"] <= 1.0
    assert all(abs(s - 1) < 1e-3 for s in report["label_sums"])
    assert report["losses"] and all(np.isfinite(report["losses"])) and report["val"] is not None
