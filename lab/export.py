"""Take a run home: its model as .keras, a TensorFlow SavedModel, TFLite float32 or TFLite int8,
each with a model card (Markdown) that says what the model is, how well it does and exactly what
input it expects, with a short Python snippet that classifies a picture as the Try tab does.

- `FORMATS` (lab.model_card: what each download holds, with the card and its snippet):
  `Exporter.export(run_id, format, owner)` builds one download (a zip; the card alone for "card")
  and returns its path.
- Every model format goes through a Keras SavedModel export (`model.export(format="tf_saved_model")`,
  which works on the TensorFlow and the JAX backends) and TensorFlow's TFLite converter; the int8
  model is calibrated on up to CALIBRATION_IMAGES of the run's own training pictures.
- A download is built in a `.tmp-export-*` folder beside the runs (swept at start-up with the
  other half-written folders), then kept in the run's `exports/` folder: a second request is a file
  read, the class's DiskBudget counts it, and deleting the run deletes it.

Exports are CPU work of several seconds: callers bound how many run at once (the API and the page
share one concurrency slot); here one lock per run and format makes a second request wait for the
first and read its file.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from lab import datasets, evaluation
from lab.dataset_base import DatasetError
from lab.images import to_model_range
from lab.model_card import CARD, EXAMPLE, FORMAT_NAMES, FORMATS, SCRIPT, Format, model_card, snippet
from lab.runs import RunInfo, RunNotFound, RunStore, not_found
from lab.slots import global_draws
from lab.storage import TMP_PREFIX

CALIBRATION_IMAGES = 200  # training pictures the int8 model's ranges are measured on
EXPORTS = "exports"  # the run's subfolder that keeps built downloads
VERSION = "v1"  # exports/v1/: a change of what a download holds makes new ones (older folders go with the run)


class ExportError(ValueError):
    """A download cannot be made (unknown format, dataset gone for int8); the message is for the student."""




def check_format(name) -> Format:
    """The Format called `name`; ExportError with the choices otherwise."""
    if not isinstance(name, str) or name not in FORMATS:
        shown = repr(name) if isinstance(name, str) and len(name) <= 40 else "that"
        raise ExportError(f"unknown export format {shown}: choose one of {', '.join(FORMAT_NAMES)}")
    return FORMATS[name]


def download_name(info: RunInfo, fmt: str) -> str:
    """What the student's download is called: `small_cnn-digits-20250101-1200-tflite_int8.zip`."""
    dataset = re.sub(r"[^0-9A-Za-z_-]+", "_", (info.dataset_title or info.hparams.dataset).split("@")[0])[:30].strip("_")
    when = info.run_id[:13]  # yyyymmdd-hhmm
    stem = f"{info.hparams.model}-{dataset or 'data'}-{when}-{fmt}"
    return stem + (".md" if fmt == "card" else ".zip")


class Exporter:
    """Builds and keeps the downloads of runs in `runs`; `catalog` (lab.user_datasets.Catalog) loads
    a run's dataset (class counts, calibration and example pictures). Safe to share between threads."""

    def __init__(self, runs: RunStore, catalog, calibration_images: int = CALIBRATION_IMAGES):
        self.runs = runs
        self.catalog = catalog
        self.calibration_images = calibration_images
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def cached(self, run_id: str, fmt: str, owner: str | None = None) -> Path | None:
        """The download if it was built already (None when not); RunNotFound / ExportError as export."""
        check_format(fmt)
        info = self.runs.info(run_id, owner)
        path = self.runs.root / info.run_id / EXPORTS / VERSION / download_name(info, fmt)
        return path if path.is_file() else None

    def export(self, run_id: str, fmt: str, owner: str | None = None,
               progress: Callable[[float, str], None] | None = None) -> Path:
        """The file to download for one of `owner`'s runs in format `fmt` (built once, then kept).

        Raises:
            ExportError: an unknown format, or an int8 model whose training pictures are gone.
            lab.runs.RunNotFound: no such run of `owner`'s (another student's gets the same answer).
        """
        check_format(fmt)
        say = progress or (lambda fraction, text: None)
        found = self.cached(run_id, fmt, owner)
        if found is not None:
            return found
        with self._lock_for(run_id, fmt):
            found = self.cached(run_id, fmt, owner)  # the request before this one may have just built it
            if found is not None:
                return found
            info = self.runs.info(run_id, owner)
            final = self.runs.root / info.run_id / EXPORTS / VERSION / download_name(info, fmt)
            work = self.runs.root / f"{TMP_PREFIX}export-{secrets.token_hex(6)}"
            work.mkdir(parents=True)
            try:
                built = self._build(info, fmt, work, say)
                if not (self.runs.root / info.run_id / "model.keras").exists():  # deleted meanwhile: no folder again
                    raise FileNotFoundError(info.run_id)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(built, final)
            except FileNotFoundError:
                if not (self.runs.root / info.run_id).exists():  # deleted (or removed for room) meanwhile
                    raise not_found(info.run_id) from None
                raise
            finally:
                shutil.rmtree(work, ignore_errors=True)
        if self.runs.budget is not None:  # exports count in the class's disk like the rest of the run
            self.runs.budget.after_save(self.runs.root / info.run_id)
        say(1.0, "ready")
        return final

    def _lock_for(self, run_id: str, fmt: str) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 256:  # forget idle locks (a lock held now is kept)
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault((run_id, fmt), threading.Lock())

    # --- building ------------------------------------------------------------------------

    def _build(self, info: RunInfo, fmt: str, work: Path, say) -> Path:
        folder = self.runs.root / info.run_id
        say(0.05, "reading the run and its dataset")
        data = self._dataset(info)
        figures = self._evaluation(info)
        spec = FORMATS[fmt]
        files: dict[str, Path] = {}
        quantization = None
        model = _load_model(folder)
        params = int(model.count_params())
        if fmt == "keras":
            files[spec.model_file] = folder / "model.keras"
        elif fmt != "card":
            say(0.2, "exporting a TensorFlow SavedModel")
            saved = work / "saved_model"
            model.export(str(saved), format="tf_saved_model", verbose=False, **_export_options())
            if fmt == "savedmodel":
                files[spec.model_file] = saved
            else:
                calibration = None
                if fmt == "tflite_int8":
                    if data is None:
                        raise ExportError("the int8 model is calibrated on this run's training pictures, and its "
                                          "dataset is gone: download the float TFLite model instead")
                    calibration = self._calibration(info, data)
                say(0.5, "converting to TFLite" + (" int8 (calibrating on the training pictures)" if calibration is not None else ""))
                tflite = work / spec.model_file
                logits = _logits_export(model, work) if calibration is not None else None
                tflite.write_bytes(to_tflite(logits or saved, calibration, softmax=logits is not None))
                files[spec.model_file] = tflite
                if calibration is not None:
                    quantization = tflite_io(tflite)
        say(0.85, "writing the model card")
        example = self._example(info, data, work)
        script = snippet(info, fmt)
        card = model_card(info, fmt, data, figures, script, quantization, params, example is not None)
        if fmt == "card":
            out = work / download_name(info, fmt)
            out.write_text(card)
            return out
        out = work / download_name(info, fmt)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(CARD, card)
            z.writestr(SCRIPT, script)
            if example is not None:
                z.write(example, EXAMPLE)
            for name, path in files.items():
                _add(z, path, name)
        return out

    def _dataset(self, info: RunInfo):
        """The run's dataset, when it still exists with the same classes (else None)."""
        try:
            data = self.catalog.load(info.hparams.dataset, info.owner)
        except DatasetError:
            return None
        return data if tuple(data.class_names) == tuple(info.class_names) else None

    def _evaluation(self, info: RunInfo):
        try:
            return evaluation.of_run(self.runs, self.catalog, info.run_id, info.owner)
        except (evaluation.EvaluationError, RunNotFound):
            return None

    def _calibration(self, info: RunInfo, data) -> np.ndarray:
        """Up to calibration_images of the run's training pictures, spread over the split, as model input."""
        train, _ = datasets.split(data, info.hparams.validation_split, info.hparams.seed)
        pick = train[np.linspace(0, len(train) - 1, min(len(train), self.calibration_images)).astype(int)]
        return to_model_range(data.x[pick])

    def _example(self, info: RunInfo, data, work: Path) -> Path | None:
        """One of the run's validation pictures as a PNG, as the dataset holds it."""
        from PIL import Image

        if data is None:
            return None
        _, val = datasets.split(data, info.hparams.validation_split, info.hparams.seed)
        if not len(val):
            return None
        x = data.x[val[0]]
        path = work / EXAMPLE
        Image.fromarray(x[..., 0] if x.shape[-1] == 1 else x).save(path)
        return path


def _load_model(folder: Path):
    """A fresh copy of the run's model (not the Try tab's cached one: export traces it)."""
    import keras

    import models  # noqa: F401  (registers the lab's own layers, e.g. tiny_vit's)

    with global_draws():  # (its layers draw seeds: lab.slots)
        return keras.saving.load_model(folder / "model.keras", compile=False)


def _export_options() -> dict:
    """model.export's options for this backend. On JAX: the forward pass alone with the weights as
    constants (is_static: without it the dropout layers' seed state becomes a uint32 variable that
    TFLite refuses), lowered for the CPU (on a TPU runtime it would otherwise be lowered for the TPU,
    which neither TensorFlow on a laptop nor the TFLite converter can run)."""
    import keras

    if keras.backend.backend() != "jax":
        return {}
    return {"is_static": True, "jax2tf_kwargs": {"native_serialization_platforms": ("cpu",)}}


def _add(z: zipfile.ZipFile, path: Path, name: str) -> None:
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.is_file():
                z.write(file, f"{name}/{file.relative_to(path).as_posix()}")
    else:
        z.write(path, name)


def _logits_export(model, work: Path) -> Path | None:
    """On JAX, the model up to its final softmax, exported for one picture at a time (else None).

    JAX spells softmax as exp / sum, which the int8 converter turns into an integer division that
    fails on some pictures ("div.cc data[i] != 0"); TensorFlow's own softmax becomes TFLite's
    quantized SOFTMAX, so the int8 model is made from the logits with tf.nn.softmax after them.
    The batch is fixed at 1: with a free batch, jax2tf's shape arithmetic (SHAPE, GATHER,
    UNSORTED_SEGMENT_PROD) stays in the graph, and with JAX 0.7 / TensorFlow 2.20 (Colab's) the
    quantized model then answered nearly the same for every picture (8% agreement, against 99%).
    """
    import keras

    last = model.layers[-1] if model.layers else None
    if keras.backend.backend() != "jax" or not (isinstance(last, keras.layers.Activation)
                                                and getattr(last.activation, "__name__", "") == "softmax"):
        return None
    inputs = model.inputs
    logits = keras.Model(inputs[0] if len(inputs) == 1 else inputs, last.input)  # one input: not a list
    path = work / "logits_saved_model"
    import tensorflow as tf

    one = [tf.TensorSpec((1, *model.inputs[0].shape[1:]), tf.float32)]
    logits.export(str(path), format="tf_saved_model", verbose=False, input_signature=one, **_export_options())
    return path


def to_tflite(saved_model: Path, calibration: np.ndarray | None = None, softmax: bool = False) -> bytes:
    """A SavedModel's `serving_default` as a TFLite flatbuffer: float32, or with `calibration`
    (model inputs) full-integer int8 with uint8 input and output. `softmax`: the SavedModel gives
    logits; TensorFlow's softmax is added after them."""
    import tensorflow as tf

    if softmax:
        loaded = tf.saved_model.load(str(saved_model))
        shape = [1, *calibration.shape[1:]] if calibration is not None else None  # as _logits_export: one picture

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
        def serve(x):
            return tf.nn.softmax(loaded.serve(x))

        converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], loaded)
    else:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if calibration is not None:
        def representative():
            for i in range(len(calibration)):
                yield [calibration[i : i + 1].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # uint8 in: with pixels 0..255 calibrated to 0..1, the input's scale is 1/255 and its zero point 0,
        # so a device feeds the prepared pixels as they are
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()


def interpreter(path):
    """A TFLite interpreter for `path`, allocated: LiteRT's when installed, else TensorFlow's."""
    import warnings

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # TensorFlow's: "tf.lite.Interpreter is deprecated" (LiteRT is its successor)
        warnings.simplefilter("ignore")
        it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    return it


def tflite_io(path) -> dict:
    """{'input': (dtype name, scale, zero point), 'output': (...), 'batch': None (any) or the fixed batch}
    of a TFLite model."""
    it = interpreter(path)
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    batch = int(inp["shape_signature"][0]) if len(inp.get("shape_signature", ())) else -1
    return {"input": (np.dtype(inp["dtype"]).name, *map(float, inp["quantization"])),
            "output": (np.dtype(out["dtype"]).name, *map(float, out["quantization"])),
            "batch": None if batch < 0 else batch}
