"""Every registry model: builds for digits and photos, outputs probabilities, trains, sane size.

Transfer models are built with random weights (VISION_LAB_PRETRAINED=0), so nothing here
touches the network; the offline error is checked with a download that always fails.
"""

import os
import urllib.error

import keras
import numpy as np
import pytest

# The whole session must build transfer models offline: test_boundaries builds every registry
# model with the default settings. (This line belongs in conftest.py; it is here until it moves.)
os.environ.setdefault("VISION_LAB_PRETRAINED", "0")

import models  # noqa: E402
from models import MODELS, transfer, vit  # noqa: E402

SHAPES = [((8, 8, 1), 10), ((32, 32, 3), 5)]
TRANSFER = ["mobilenet_v3_small", "efficientnet_b0"]
SCRATCH = [name for name in MODELS if name not in TRANSFER]
# Parameters for the 8x8 digits: a floor (it can learn) and a ceiling (it stays a classroom model).
PARAM_RANGE = {
    "mlp": (5_000, 50_000),
    "small_cnn": (10_000, 100_000),
    "resnet": (50_000, 1_000_000),
    "tiny_vit": (20_000, 200_000),
    "mobilenet_v3_small": (500_000, 2_000_000),
    "efficientnet_b0": (3_000_000, 6_000_000),
}


@pytest.fixture(autouse=True)
def offline_backbones(monkeypatch):
    monkeypatch.setenv(transfer.PRETRAINED_ENV, "0")


def random_data(shape, num_classes, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape), dtype=np.float32), rng.integers(0, num_classes, n)


def test_every_registry_entry_is_described_and_sized():
    assert set(PARAM_RANGE) == set(MODELS)
    for name, spec in MODELS.items():
        assert spec.name == name and len(spec.description) > 20, name


@pytest.mark.parametrize("shape,num_classes", SHAPES, ids=["digits", "photos"])
@pytest.mark.parametrize("name", list(MODELS))
def test_builds_and_outputs_probabilities(name, shape, num_classes):
    model = MODELS[name].build(shape, num_classes, None)
    assert model.input_shape == (None, *shape) and model.output_shape == (None, num_classes)
    x, _ = random_data(shape, num_classes, n=4)
    probs = np.asarray(model(x, training=False))
    assert probs.dtype == np.float32
    assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    low, high = PARAM_RANGE[name]
    if shape == (8, 8, 1):
        assert low <= model.count_params() <= high, (name, model.count_params())


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRATCH)
@pytest.mark.parametrize("shape,num_classes", SHAPES, ids=["digits", "photos"])
def test_scratch_models_train_a_few_steps(name, shape, num_classes):
    keras.utils.set_random_seed(0)
    model = MODELS[name].build(shape, num_classes, None)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    before = [w.copy() for w in model.get_weights()]
    x, y = random_data(shape, num_classes)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.slow
@pytest.mark.parametrize("name", TRANSFER)
def test_transfer_models_train_only_their_head(name):
    shape, num_classes = (8, 8, 1), 10
    model = MODELS[name].build(shape, num_classes, None)
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    head = model.get_layer("classifier")
    assert not backbone.trainable and backbone.weights
    assert {id(w) for w in model.trainable_weights} == {id(w) for w in head.trainable_weights}
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == (head.input.shape[-1] + 1) * num_classes
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    frozen = [w.copy() for w in backbone.get_weights()]  # batch-norm statistics included
    x, y = random_data(shape, num_classes, n=8)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert all(np.array_equal(a, b) for a, b in zip(frozen, backbone.get_weights()))


def test_transfer_inputs_reach_the_backbone_as_rgb_pixels_0_to_255():
    model = MODELS["mobilenet_v3_small"].build((8, 8, 1), 10, None)
    adapted = model.get_layer("to_0_255").output  # what goes into the backbone
    seen = keras.Model(model.input, adapted)(np.full((1, 8, 8, 1), 0.5, np.float32))
    assert tuple(seen.shape) == (1, transfer.MOBILENET_SIZE, transfer.MOBILENET_SIZE, 3)
    assert np.allclose(np.asarray(seen), 127.5)


def fail_download(fname=None, origin=None, **kwargs):
    """What keras' get_file raises without a network (the URLError becomes the context)."""
    try:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    except urllib.error.URLError as e:
        raise Exception(f"URL fetch failure on {origin}: None -- {e.reason}")


@pytest.mark.slow
@pytest.mark.parametrize("name,label", [("mobilenet_v3_small", "MobileNetV3Small"), ("efficientnet_b0", "EfficientNetB0")])
def test_imagenet_weights_that_cannot_download_give_a_clear_error(monkeypatch, name, label):
    # keras.applications calls keras.src.utils.file_utils.get_file; patching it also bypasses
    # any weights already in the Keras cache, so this never depends on the machine.
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", fail_download)
    monkeypatch.setenv(transfer.PRETRAINED_ENV, "1")
    with pytest.raises(RuntimeError) as caught:
        MODELS[name].build((8, 8, 1), 10, None)
    assert str(caught.value) == (
        f"Could not download the ImageNet weights for {label} (no internet connection?). "
        "Models that train from scratch (mlp, small_cnn, resnet, tiny_vit) still work."
    )
    monkeypatch.delenv(transfer.PRETRAINED_ENV)  # unset means pretrained, as in the app
    with pytest.raises(RuntimeError, match="Could not download"):
        MODELS[name].build((8, 8, 1), 10, None)


@pytest.mark.slow
def test_pretrained_argument_overrides_the_environment(monkeypatch):
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", fail_download)
    with pytest.raises(RuntimeError, match="MobileNetV3Small"):
        transfer.build_mobilenet_v3_small((32, 32, 3), 5, pretrained=True)
    monkeypatch.setenv(transfer.PRETRAINED_ENV, "1")
    assert transfer.build_mobilenet_v3_small((32, 32, 3), 5, pretrained=False).output_shape == (None, 5)


def test_other_build_errors_are_not_called_a_download_problem(monkeypatch):
    def broken(fname=None, origin=None, **kwargs):
        raise KeyError("not a network problem")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", broken)
    with pytest.raises(KeyError):
        transfer.build_mobilenet_v3_small((8, 8, 1), 10, pretrained=True)


@pytest.mark.parametrize("side,patch", [(8, 2), (28, 4), (32, 4), (64, 8), (96, 8)])
def test_vit_patch_size_follows_the_image_size(side, patch):
    assert vit.patch_size_for((side, side, 3)) == patch


def test_resnet_never_pools_below_two_by_two():
    model = MODELS["resnet"].build((8, 8, 1), 10, None)
    assert model.get_layer("block3_out").output.shape[1:3] == (2, 2)
    big = MODELS["resnet"].build((96, 96, 3), 5, None)
    assert big.get_layer("block3_out").output.shape[1:3] == (3, 3)


@pytest.mark.slow
def test_summary_counts_parameters_and_lists_layers(monkeypatch):
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", fail_download)
    monkeypatch.setenv(transfer.PRETRAINED_ENV, "1")  # the summary must not need the weights
    for name in MODELS:
        count, text = models.summary(name, (8, 8, 1), 10)
        assert count == MODELS[name].build((8, 8, 1), 10, None, **(
            {"pretrained": False} if name in TRANSFER else {})).count_params()
        assert f"{count:,} parameters" in text and "(Dense)" in text, name
    assert "frozen" in models.summary("efficientnet_b0", (8, 8, 1), 10)[1]
    with pytest.raises(KeyError, match="choose one of"):
        models.summary("nope", (8, 8, 1), 10)
