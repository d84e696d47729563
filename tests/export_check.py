"""Helpers for tests/test_export.py, also run as a script in fresh processes.

    python tests/export_check.py produce OUT [MODEL]   train a 1-epoch run on the digits (the
        backend KERAS_BACKEND names), export every format into OUT with what the lab's /predict
        says about each validation picture (OUT/lab.npz: its prepared inputs and labels)
    python tests/export_check.py check OUT             load each download in OUT without the lab,
        classify lab.npz's inputs with it, print {format: [class numbers]} as JSON

`check` imports numpy, keras, tensorflow and zipfile only: it is how a student's computer sees
the downloads.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MODEL_FORMATS = ("keras", "savedmodel", "tflite", "tflite_int8")


def produce(out: Path, model: str = "small_cnn", runtime=None) -> dict:
    """Train, save and export one run into `out`; returns {run_id, store, paths: {format: Path}}."""
    from lab import backend, datasets, inference, training
    from lab.export import FORMATS, Exporter
    from lab.hparams import validate
    from lab.images import prepare, read_image
    from lab.runs import RunStore
    from lab.user_datasets import Catalog

    out = Path(out)
    hp = validate(model=model, epochs=1)
    log = training.TrainingLog()
    data = datasets.load("digits")
    result = training.fit(hp, runtime or backend.runtime(), log, data=data)
    store = RunStore(out / "runs")
    run_id = store.save(owner="alice", hparams=hp, metrics=log.snapshot(), model=result.model,
                        class_names=result.class_names, look=data.look, state="done")
    exporter = Exporter(store, Catalog())
    paths = {fmt: exporter.export(run_id, fmt, "alice") for fmt in FORMATS}
    run = store.load(run_id, "alice")
    _, val = datasets.split(data, hp.validation_split, hp.seed)
    # what /predict does with each validation picture: the prepared input and the label it answers
    inputs = np.stack([prepare(read_image(data.x[i]), data.look) for i in val])
    labels = [int(run.info.class_names.index(inference.predict(run, data.x[i]).label)) for i in val]
    np.savez(out / "lab.npz", inputs=inputs, labels=np.asarray(labels))
    for fmt, path in paths.items():
        (out / f"{fmt}{path.suffix}").write_bytes(path.read_bytes())
    return {"run_id": run_id, "store": store, "paths": paths, "exporter": exporter}


def classify(fmt: str, folder: Path, inputs: np.ndarray) -> list[int]:
    """Class numbers for `inputs` from the unzipped download in `folder`, loaded without the lab."""
    if fmt == "keras":
        import keras

        model = keras.saving.load_model(folder / "model.keras", compile=False)
        probs = np.asarray(model.predict(inputs, verbose=0))
    elif fmt == "savedmodel":
        import tensorflow as tf

        model = tf.saved_model.load(str(folder / "saved_model"))
        probs = model.serve(tf.constant(inputs)).numpy()
    else:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            it = tf.lite.Interpreter(model_path=str(folder / ("model.tflite" if fmt == "tflite" else "model_int8.tflite")))
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        fixed = int(inp["shape_signature"][0]) > 0  # a model made for a fixed batch (JAX's int8: one picture)
        step = int(inp["shape"][0]) if fixed else len(inputs)
        if not fixed:
            it.resize_tensor_input(inp["index"], inputs.shape)
        it.allocate_tensors()
        x = inputs
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), 0, 255).astype(inp["dtype"])
        parts = []
        for start in range(0, len(x), step):
            it.set_tensor(inp["index"], x[start:start + step])
            it.invoke()
            parts.append(it.get_tensor(out["index"]).copy())
        probs = np.concatenate(parts)
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            probs = (probs.astype(np.float32) - zero) * scale
    return [int(i) for i in np.argmax(probs, axis=1)]


def check(out: Path) -> dict:
    out = Path(out)
    with np.load(out / "lab.npz") as f:
        inputs = f["inputs"].astype(np.float32)
    answers = {}
    for fmt in MODEL_FORMATS:
        with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(out / f"{fmt}.zip") as z:
            z.extractall(tmp)
            answers[fmt] = classify(fmt, Path(tmp), inputs)
    return answers


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    command, folder = sys.argv[1], Path(sys.argv[2])
    if command == "produce":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        done = produce(folder, *(sys.argv[3:4]))
        print(json.dumps({"run_id": done["run_id"], "backend": os.environ.get("KERAS_BACKEND")}))
    else:
        print(json.dumps(check(folder)))
