"""Where the model looks: a heatmap over the model's-eye view, for the Try tab, the mistakes and /explain.

Two methods, chosen from the model's structure (no list of names to keep up to date):

- **Grad-CAM** (Selvaraju et al. 2017) for convolutional models (small_cnn, resnet, the transfer
  backbones): the last feature map before space is collapsed (Flatten or global pooling), each of
  its channels weighted by the mean gradient of the class's score over it, summed, negatives cut.
  Coarse (a 4x4 grid on a backbone) but about *what*, not single pixels.
- **Input-gradient saliency** (Simonyan et al. 2013) for models with no such map (mlp; tiny_vit,
  whose only convolution is its patch embedding): how strongly each input pixel moves the score.

The score is the class's logit (the input of the final softmax), which does not flatten out when
the model is sure, as the probability does. The gradient step is written once per Keras backend
(`GRADIENTS`: tf.GradientTape; jax.value_and_grad over `stateless_call`) behind `gradient()`.
The sub-models and the compiled step are built once per loaded run and kept on it (`run.cache`),
so a webcam frame costs one forward and one backward pass.

A heatmap is not proof: it shows which places move the model's score, not why, and a model can
look at the right place for the wrong reason (README, "Reading a heatmap").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lab.images import enlarge, prepare, read_image, to_model_range
from lab.inference import Prediction

GRAD_CAM, SALIENCY = "grad-cam", "saliency"
DISPLAY_SIZE = 160  # the longer side of the overlay: lab.images.enlarge's size, what the Try tab shows
CAM_FLOOR = 0.25  # the weight Grad-CAM leaves a pixel outside its region (0: the region alone, 1: no region)
HEAT_OPACITY = 0.6  # how much colour the hottest place gets over the picture (cold places stay the picture)
# layers that collapse space: the map Grad-CAM explains is their input
_COLLAPSE = ("Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D")
# layers between the explained map and the collapse that only shrink or drop it: walk past them
_PASS_THROUGH = ("MaxPooling2D", "AveragePooling2D", "Dropout", "SpatialDropout2D")
# layers between the logits and the collapse: a classifier on pooled features
_CLASSIFIER = ("Dense", "Dropout", "Activation", "BatchNormalization")
_CACHE_KEY = "explainer"


class ExplainError(RuntimeError):
    """The model cannot be explained (an unsupported backend or an unusual model)."""


@dataclass(frozen=True)
class Explanation:
    prediction: Prediction  # label, confidences, ms (heatmap included), the model's-eye view
    method: str  # GRAD_CAM or SALIENCY
    heat: np.ndarray  # float32 0..1, the model input's height x width: where the model looks
    overlay: np.ndarray  # uint8 HxWx3, DISPLAY_SIZE on its longer side: the view with the heat over it

    def as_dict(self) -> dict:
        return {**self.prediction.as_dict(), "method": self.method}


@dataclass
class Explainer:
    """The sub-models of one loaded model: input -> explained tensor -> (logits, probabilities)."""

    method: str
    features: object | None  # keras.Model input -> feature map; None for saliency (the input is explained)
    head: object  # keras.Model explained tensor -> [logits, probabilities]
    step: object = None  # the backend's compiled gradient step, built on first use

    def explain(self, x: np.ndarray, class_index=None) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, classes), heat (N, H, W) in 0..1 at the input's size) for a float32 batch.

        `class_index`: the class to explain per image (an int, or one per image); None: the most likely.
        """
        x = np.asarray(x, np.float32)
        probs, fmap, g_fmap, g_x = gradient(self, x, class_index)
        # The pixels: how much each one's difference from the empty background (the median of the
        # picture's border, per channel: black for a prepared digit) adds to the score. Blank paper
        # adds nothing, whatever the gradient there.
        background = np.median(_border(x), axis=1)[:, None, None, :]
        fine = np.maximum((g_x * (x - background)).sum(axis=-1), 0.0)
        if self.method == GRAD_CAM:
            weights = g_fmap.mean(axis=(1, 2), keepdims=True)  # one weight per channel
            cam = np.maximum((weights * fmap).sum(axis=-1), 0.0)
            coarse = _normalise(np.stack([_resize(c, x.shape[1:3]) for c in cam]))
            # the class's region, sharpened to its pixels; pixels outside it keep a little of their own
            # weight (a coarse 4x4 map can miss a thin stroke, and must not blank it out)
            fine = (CAM_FLOOR + (1 - CAM_FLOOR) * coarse) * _normalise(fine)
        return probs, _normalise(fine)


def explainer_for(model) -> Explainer:
    """The Explainer of a keras model: Grad-CAM when it has a feature map before a Flatten or global
    pooling, saliency otherwise. The models share the given model's layers (no copies)."""
    import keras

    # Walk the model's own graph back from its output (a loaded Sequential's layers also keep nodes of
    # earlier builds, so layer.input may belong to another graph). logits: the input of the final
    # softmax Activation (every model of the lab ends so); otherwise the output itself.
    probs = model.outputs[0]
    layer, inputs = _producer(probs)
    logits = inputs[0] if type(layer).__name__ == "Activation" else probs
    outputs = [logits, probs]
    fmap = _feature_map(logits)
    if fmap is None:
        return Explainer(SALIENCY, None, keras.Model(model.inputs, outputs, name=f"{model.name}_saliency"))
    features = keras.Model(model.inputs, fmap, name=f"{model.name}_features")
    head = keras.Model(fmap, outputs, name=f"{model.name}_from_features")  # Keras clones the graph's entry
    return Explainer(GRAD_CAM, features, head)


def _producer(tensor):
    """(the layer that made a symbolic tensor, that call's input tensors)."""
    layer, node_index, _ = tensor._keras_history
    return layer, layer._inbound_nodes[node_index].input_tensors


def _feature_map(logits):
    """The symbolic map Grad-CAM explains, or None. Back from the logits through the classifier's
    layers to one that collapses space; its input, walking back over pooling and dropout, when that is a
    4-D map with room (>1x1) made by the model (not its input: the mlp flattens the picture itself)."""
    tensor = logits
    while True:
        layer, inputs = _producer(tensor)
        kind = type(layer).__name__
        if kind in _COLLAPSE:
            tensor = inputs[0]
            break
        if kind not in _CLASSIFIER or len(inputs) != 1:
            return None  # e.g. tiny_vit: a mean over tokens, not over a grid
        tensor = inputs[0]
    layer, inputs = _producer(tensor)
    while type(layer).__name__ in _PASS_THROUGH:
        tensor = inputs[0]
        layer, inputs = _producer(tensor)
    if type(layer).__name__ == "InputLayer" or len(tensor.shape) != 4 or max(tensor.shape[1:3]) < 2:
        return None
    return tensor


def explainer(run) -> Explainer:
    """The Explainer of a loaded run (lab.runs.LoadedRun), built once and kept with it."""
    with run._lock:
        found = run.cache.get(_CACHE_KEY)
        if found is None:
            found = run.cache[_CACHE_KEY] = explainer_for(run.model)
    return found


def explain(run, source, class_index=None) -> Explanation:
    """Classify one image with a loaded run and show where its model looks (the Try tab, /explain).

    Args:
        run: a lab.runs.LoadedRun.
        source: anything lab.images.read_image accepts.
        class_index: the class to explain; None: the predicted one.

    Raises:
        lab.images.ImageError: the input is not a usable image.
    """
    t0 = time.perf_counter()
    x = prepare(read_image(source), run.info.look)
    return explain_input(run, x, class_index, t0)


def explain_input(run, x: np.ndarray, class_index=None, t0: float | None = None) -> Explanation:
    """`explain` for a prepared model input (float32 0..1, the run's look) or a stored uint8 picture
    (a mistake's, lab.evaluation)."""
    t0 = time.perf_counter() if t0 is None else t0
    if np.asarray(x).dtype == np.uint8:
        x = to_model_range(x)
    x = np.asarray(x, np.float32).reshape(run.info.look.shape())
    ex = explainer(run)
    with run._lock:  # one model call at a time per run, as LoadedRun.predict
        probs, heat = ex.explain(x[None], class_index)
    probs, heat = probs[0].astype(float), heat[0]
    order = np.argsort(-probs)
    names = run.info.class_names
    view = enlarge(x, DISPLAY_SIZE)
    pred = Prediction(names[order[0]], {names[i]: float(probs[i]) for i in order},
                      (time.perf_counter() - t0) * 1000, view)
    return Explanation(pred, ex.method, heat, overlay(view, heat))


def overlay(view: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The model's-eye view (uint8, gray or RGB) with the heat (0..1, any size) smoothly over it in
    colour: dark blue → red → yellow; places with no heat keep the picture."""
    view = np.asarray(view)
    rgb = np.repeat(view[..., None], 3, axis=-1) if view.ndim == 2 else view[..., :3]
    h = _resize(np.asarray(heat, np.float32), rgb.shape[:2])[..., None]
    alpha = HEAT_OPACITY * np.clip(h, 0.0, 1.0) ** 0.7  # faint heat still shows a little
    out = rgb.astype(np.float32) * (1 - alpha) + _colours(h[..., 0]) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def share_on(heat: np.ndarray, mask: np.ndarray) -> float:
    """The share of the heat that lies where `mask` is true (how much lies on the ink, say)."""
    heat = np.asarray(heat, np.float64)
    total = heat.sum()
    return float(heat[np.asarray(mask, bool)].sum() / total) if total > 0 else 0.0


# -- the gradient step, once per backend -------------------------------------------------------------
def gradient(ex: Explainer, x: np.ndarray, class_index=None):
    """One forward and one backward pass: (probabilities, feature map, d score / d feature map,
    d score / d input) for a float32 batch, the score being the logit of `class_index` (None: each
    image's most likely class). Without a feature map (saliency) the map is the input itself."""
    import keras

    name = keras.backend.backend()
    if name not in GRADIENTS:
        raise ExplainError(f"heatmaps need the tensorflow or jax Keras backend, not {name}")
    if ex.step is None:
        ex.step = GRADIENTS[name](ex.features, ex.head)
    n = len(x)
    wanted = np.full(n, -1, np.int32) if class_index is None else np.broadcast_to(
        np.asarray(class_index, np.int32), (n,)).copy()
    return tuple(np.asarray(t, np.float32) for t in ex.step(np.asarray(x, np.float32), wanted))


def _tensorflow_step(features, head):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(x, wanted):
        with tf.GradientTape() as tape:
            tape.watch(x)  # records every op from the input on, the feature map's included
            fmap = x if features is None else features(x, training=False)
            logits, probs = head(fmap, training=False)
            chosen = tf.where(wanted < 0, tf.argmax(probs, axis=-1, output_type=tf.int32), wanted)
            score = tf.reduce_sum(tf.gather(tf.cast(logits, tf.float32), chosen, batch_dims=1))
        g_fmap, g_x = tape.gradient(score, [fmap, x])
        return probs, fmap, g_fmap, g_x

    return lambda x, wanted: [t.numpy() for t in step(tf.constant(x), tf.constant(wanted))]


def _jax_step(features, head):
    import jax
    import jax.numpy as jnp

    def score(fmap, head_vars, wanted):
        (logits, probs), _ = head.stateless_call(*head_vars, fmap, training=False)
        chosen = jnp.where(wanted < 0, jnp.argmax(probs, axis=-1).astype(jnp.int32), wanted)
        return jnp.take_along_axis(logits.astype(jnp.float32), chosen[:, None], axis=1).sum(), probs

    @jax.jit
    def step(x, feature_vars, head_vars, wanted):
        if features is None:
            fmap, back = x, lambda g: (g,)
        else:  # the input's gradient through the feature part: its vector-Jacobian product
            fmap, back = jax.vjp(lambda v: features.stateless_call(*feature_vars, v, training=False)[0], x)
        g_fmap, probs = jax.grad(score, has_aux=True)(fmap, head_vars, wanted)
        return probs, fmap, g_fmap, back(g_fmap.astype(fmap.dtype))[0]

    def variables(model):
        # read per call (cheap): the values a stateless call takes, trainable then not
        return ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])

    def run(x, wanted):
        feature_vars = ([], []) if features is None else variables(features)
        return [np.asarray(t) for t in step(jnp.asarray(x), feature_vars, variables(head), jnp.asarray(wanted))]

    return run


GRADIENTS = {"tensorflow": _tensorflow_step, "jax": _jax_step}  # Keras backend -> builds the step


# -- pictures --------------------------------------------------------------------------------------
def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float map resized smoothly (bilinear, pixel centres aligned) to (height, width)."""
    a = np.asarray(a, np.float32)
    if a.shape == tuple(size):
        return a
    return np.asarray(Image.fromarray(a, mode="F").resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR))


def _border(x: np.ndarray) -> np.ndarray:
    """The outermost pixels of each picture of a batch: (N, pixels, channels)."""
    n, c = len(x), x.shape[-1]
    return np.concatenate([x[:, 0].reshape(n, -1, c), x[:, -1].reshape(n, -1, c),
                           x[:, :, 0].reshape(n, -1, c), x[:, :, -1].reshape(n, -1, c)], axis=1)


def _normalise(heat: np.ndarray) -> np.ndarray:
    """Each map scaled to 0..1 by its own maximum (all zeros stays all zeros)."""
    top = heat.reshape(len(heat), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(top > 0, heat / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)


_STOPS = np.array([[0.0, 20, 30, 140], [0.35, 40, 90, 255], [0.6, 230, 40, 40], [0.85, 255, 160, 0],
                   [1.0, 255, 255, 90]], np.float32)  # position, R, G, B: blue (cool) to yellow (hot)


def _colours(h: np.ndarray) -> np.ndarray:
    """0..1 -> RGB float, along _STOPS."""
    return np.stack([np.interp(h, _STOPS[:, 0], _STOPS[:, c]) for c in (1, 2, 3)], axis=-1)
