"""Where the model looks (lab.explain, issue 14): the heatmap's pictures, its gradients against finite
differences, every model family under TensorFlow and JAX (the same heat from the same weights), and a
briefly trained small_cnn whose heat lies on the digits' ink, not on the empty paper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab import datasets, explain, training
from lab.hparams import validate
from lab.runs import RunStore

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = {  # model -> (input shape, the method its structure calls for)
    "mlp": ((8, 8, 1), explain.SALIENCY),
    "small_cnn": ((8, 8, 1), explain.GRAD_CAM),
    "resnet": ((16, 16, 3), explain.GRAD_CAM),
    "tiny_vit": ((8, 8, 1), explain.SALIENCY),
    # the transfer family (EfficientNet-B0 is built the same way, and four times slower): gray input, so
    # the model's own resize and gray-to-colour layers sit before the backbone's feature map
    "mobilenet_v3_small": ((32, 32, 1), explain.GRAD_CAM),
}
CLASSES = 3


def build(name: str, shape):
    """A model of the family with seeded random weights (transfer backbones without ImageNet's)."""
    import keras

    from models import MODELS

    keras.utils.set_random_seed(7)
    spec = MODELS[name]
    return spec.build(shape, CLASSES, None, **({"pretrained": False} if spec.transfer else {}))


def pictures(shape, n: int = 2) -> np.ndarray:
    """Asymmetric pictures: a bright bar in the top-left quarter on a dark ground, plus a little noise."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 0.1, (n, *shape)).astype(np.float32)
    h, w = shape[:2]
    x[:, h // 8: h // 2, w // 8: w // 4 + 1] = 0.9
    x[1, h // 2:, w // 2:] = 0.6  # the second one also has a blob bottom right
    return x


# -- pictures -----------------------------------------------------------------------------------------
def test_the_overlay_colours_only_where_the_heat_is_and_keeps_the_try_tabs_size():
    view = np.full((160, 160), 90, np.uint8)
    heat = np.zeros((8, 8), np.float32)
    heat[0, 0] = 1.0  # top-left only: a flip or a transpose would colour another corner
    out = explain.overlay(view, heat)
    assert out.shape == (160, 160, 3) and out.dtype == np.uint8
    assert np.array_equal(out[100:, :], np.full((60, 160, 3), 90, np.uint8))  # no heat: the picture itself
    assert np.array_equal(out[:, 100:], np.full((160, 60, 3), 90, np.uint8))
    assert np.abs(out[5, 5].astype(int) - 90).max() > 60  # the hottest place is strongly coloured
    r, g, b = out[5, 5].astype(int)
    assert r > b + 60 and g > b + 40  # yellow: hottest
    cold = explain.overlay(view, np.zeros((8, 8), np.float32))
    assert np.array_equal(cold, np.repeat(view[..., None], 3, axis=-1))


def test_share_on_counts_the_heat_under_the_mask():
    heat = np.array([[1.0, 3.0], [0.0, 0.0]])
    assert explain.share_on(heat, heat > 2) == pytest.approx(0.75)
    assert explain.share_on(np.zeros((2, 2)), np.ones((2, 2))) == 0.0


# -- gradients against a reference ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "small_cnn"])
def test_the_input_gradient_matches_finite_differences(name):
    """d logit / d pixel from the gradient step, against (logit(x + e) - logit(x - e)) / 2e."""
    import keras

    shape = FAMILIES[name][0]
    model = build(name, shape)
    ex = explain.explainer_for(model)
    x = pictures(shape)[:1].astype(np.float64)
    probs, _, _, g_x = explain.gradient(ex, x.astype(np.float32), class_index=1)
    logits_of = keras.Model(model.inputs, ex.head.outputs[0] if ex.features is None else model.layers[-1].input)
    eps, rng = 1e-3, np.random.default_rng(0)  # small: ReLUs and max-pools have kinks
    for _ in range(4):
        i, j = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        up, down = x.copy(), x.copy()
        up[0, i, j, 0] += eps
        down[0, i, j, 0] -= eps
        numeric = (np.asarray(logits_of(up.astype(np.float32)))[0, 1]
                   - np.asarray(logits_of(down.astype(np.float32)))[0, 1]) / (2 * eps)
        assert g_x[0, i, j, 0] == pytest.approx(numeric, abs=2e-3, rel=5e-2)
    assert np.allclose(probs, np.asarray(model(x.astype(np.float32))), atol=1e-5)


def test_each_family_gets_its_method_and_a_heat_the_size_of_its_input_tensorflow():
    for name in ("mlp", "small_cnn", "resnet", "tiny_vit"):  # the transfer ones: the slow test below
        shape, method = FAMILIES[name]
        ex = explain.explainer_for(build(name, shape))
        probs, heat = ex.explain(pictures(shape))
        assert ex.method == method, name
        assert probs.shape == (2, CLASSES) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        assert heat.shape == (2, *shape[:2]) and heat.min() >= 0 and heat.max() == pytest.approx(1.0), name
        # a blank picture has nothing that differs from its background: no heat at all
        _, blank = ex.explain(np.zeros((1, *shape), np.float32))
        assert not blank.any(), name


# -- every family under both backends -----------------------------------------------------------------
BACKEND_SCRIPT = """
import json, sys
import numpy as np, keras
import models
from lab import explain
out = {"backend": keras.backend.backend()}
for name, path, x_path in json.loads(sys.argv[1]):
    model = keras.saving.load_model(path, compile=False)
    x = np.load(x_path)
    ex = explain.explainer_for(model)
    probs, heat = ex.explain(x)
    wrong = (np.argmax(probs, axis=1) + 1) % probs.shape[1]
    _, other = ex.explain(x, class_index=wrong)
    out[name] = {"method": ex.method, "probs": probs.tolist(), "heat": heat.tolist(), "other": other.tolist()}
print(json.dumps(out))
"""


def backend_answers(backend: str, jobs) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", BACKEND_SCRIPT, json.dumps(jobs)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_every_family_gives_the_same_heat_under_tensorflow_and_jax(tmp_path):
    """The same saved weights explained by each backend's own gradient step (tf.GradientTape; jax.vjp and
    jax.grad over stateless_call): the same method, probabilities and heat, for the predicted class and
    for another one."""
    jobs = []
    for name, (shape, _) in FAMILIES.items():
        path, x_path = tmp_path / f"{name}.keras", tmp_path / f"{name}.npy"
        build(name, shape).save(path)
        np.save(x_path, pictures(shape))
        jobs.append((name, str(path), str(x_path)))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # the two processes at once: each waits on imports and tracing
        tf_out, jax_out = pool.map(lambda backend: backend_answers(backend, jobs), ("tensorflow", "jax"))
    assert (tf_out["backend"], jax_out["backend"]) == ("tensorflow", "jax")
    for name, (shape, method) in FAMILIES.items():
        a, b = tf_out[name], jax_out[name]
        assert a["method"] == b["method"] == method, name
        assert np.allclose(a["probs"], b["probs"], atol=1e-4), name
        heat = np.asarray(a["heat"])
        assert heat.shape == (2, *shape[:2]) and heat.max() == pytest.approx(1.0), name
        assert np.allclose(heat, b["heat"], atol=0.02), (name, np.abs(heat - np.asarray(b["heat"])).max())
        assert np.allclose(a["other"], b["other"], atol=0.02), name
        assert not np.allclose(heat, a["other"], atol=0.02), name  # the class explained matters


# -- a trained model looks at the ink ----------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(runtime, tmp_path_factory):
    """small_cnn on the bundled digits, two epochs (a couple of seconds), saved and loaded as the app does."""
    data = datasets.load("digits")
    hp = validate(model="small_cnn", epochs=2)
    log = training.TrainingLog()
    result = training.fit(hp, runtime, log, data=data)
    store = RunStore(tmp_path_factory.mktemp("runs"))
    run_id = store.save(owner="alice", hparams=hp, metrics=log.snapshot(), model=result.model,
                        class_names=result.class_names, look=data.look, state="done")
    _, val = datasets.split(data, hp.validation_split, hp.seed)
    return store.load(run_id), data, val


@pytest.mark.slow
def test_most_of_the_heat_lies_on_the_ink_of_real_digits(digits_run):
    run, data, val = digits_run
    shares, flipped, inks = [], [], []
    for i in val[:12]:
        picture = data.x[i]
        ex = explain.explain_input(run, picture)
        assert ex.method == explain.GRAD_CAM and ex.heat.shape == (8, 8)
        ink = picture[..., 0] > 0.3 * 255  # light on dark: the strokes
        shares.append(explain.share_on(ex.heat, ink))
        flipped.append(explain.share_on(ex.heat[:, ::-1], ink))  # a mirrored heatmap: what a bug would give
        inks.append(ink.mean())
    assert np.mean(shares) > 0.7, shares
    assert sum(s > 0.5 for s in shares) >= 10, shares
    assert np.mean(shares) > np.mean(inks) + 0.25  # far more than spreading it evenly would put there
    assert np.mean(flipped) < np.mean(shares) - 0.15  # the test can tell a mirrored heatmap


@pytest.mark.slow
def test_a_file_and_its_prepared_picture_give_the_same_answer_and_the_explainer_is_built_once(digits_run):
    run, data, val = digits_run
    from lab import inference

    example = datasets.SAMPLE_DATA / "examples" / "digit_7.png"
    ex = explain.explain(run, example)
    pred = inference.predict(run, example)
    assert ex.prediction.label == pred.label
    assert all(ex.prediction.confidences[k] == pytest.approx(v, abs=1e-5) for k, v in pred.confidences.items())
    assert np.array_equal(ex.prediction.view, explain.enlarge(explain.prepare(explain.read_image(example),
                                                                                   run.info.look), 160))
    assert ex.overlay.shape == (160, 160, 3)
    assert explain.explainer(run) is explain.explainer(run)  # kept with the loaded run
    # a stored mistake (uint8) and its float form are the same picture to the model
    a = explain.explain_input(run, data.x[val[0]])
    b = explain.explain_input(run, data.x[val[0]].astype(np.float32) / 255)
    assert np.allclose(a.heat, b.heat, atol=1e-5)
