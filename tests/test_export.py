"""Taking a run home (issue 15): .keras, SavedModel, TFLite float and int8, each with a model card;
TensorBoard event files in every run.

Each download is checked in a fresh Python process that does not import the lab (as a student's
computer would load it): against what the lab's own /predict answers on the run's validation
pictures, on the TensorFlow backend and (a run trained and exported there) the JAX one. The card's
snippet is run as written. Each format is converted once per backend (module fixtures).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lab import inference
from lab.dataset_base import CIFAR10_LOOK, DIGITS_LOOK, FASHION_LOOK, MNIST_LOOK
from lab.export import FORMATS, ExportError, check_format
from lab.model_card import snippet
from lab.hparams import validate
from lab.images import ImageLook, prepare, read_image
from lab.runs import RunInfo, RunNotFound, write_events

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "tests" / "export_check.py"
EXAMPLES = ROOT / "sample_data" / "examples"
TF_ENV = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
JAX_ENV = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}


def info_for(look: ImageLook, model: str = "small_cnn") -> RunInfo:
    return RunInfo(run_id="20250101-120000-0123456789abcdef", owner="alice", created=0.0, state="done",
                   hparams=validate(model=model), class_names=tuple("0123456789"), look=look, val_accuracy=0.9)


def snippet_preprocessing(look: ImageLook) -> dict:
    """The snippet's own functions (read, prepare), run without its model part."""
    code = snippet(info_for(look), "tflite")
    namespace: dict = {}
    exec(compile(code[: code.index("\nx = prepare(")], "classify.py", "exec"), namespace)
    return namespace


def pictures(tmp_path: Path) -> list[Path]:
    """Pictures that exercise every step: the example digits (dark on light), a photo-like RGB, a
    transparent drawing, a big JPEG (drafted and shrunk), a palette image, a blank page, an
    EXIF-rotated photo and an asymmetric light-on-dark digit."""
    rng = np.random.default_rng(0)
    paths = sorted(EXAMPLES.glob("*.png"))
    out = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(out)
    paths.append(out)
    drawing = np.zeros((90, 70, 4), np.uint8)
    drawing[20:70, 30:38, 3] = 255  # black strokes on a transparent canvas
    drawing[20:28, 15:50, 3] = 255
    Image.fromarray(drawing).save(out := tmp_path / "drawing.png")
    paths.append(out)
    big = np.full((1500, 2100, 3), 240, np.uint8)
    big[300:1200, 900:1100] = (20, 40, 60)
    Image.fromarray(big).save(out := tmp_path / "big.jpg", quality=90)
    paths.append(out)
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).convert("P").save(out := tmp_path / "palette.png")
    paths.append(out)
    Image.new("L", (50, 50), 250).save(out := tmp_path / "blank.png")
    paths.append(out)
    rotated = Image.fromarray(rng.integers(0, 256, (20, 50, 3), dtype=np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90° on display
    rotated.save(out := tmp_path / "rotated.jpg", exif=exif.tobytes())
    paths.append(out)
    seven = np.zeros((64, 48), np.uint8)
    seven[8:14, 8:40] = 255
    seven[14:56, 30:36] = 200
    Image.fromarray(seven).save(out := tmp_path / "seven_light_on_dark.png")
    paths.append(out)
    return paths


@pytest.mark.parametrize("look", [DIGITS_LOOK, MNIST_LOOK, FASHION_LOOK, CIFAR10_LOOK, ImageLook(24, 32, 3)],
                         ids=["digits", "mnist", "fashion", "cifar10", "rgb-24x32"])
def test_the_snippets_preprocessing_is_the_labs(look, tmp_path):
    """Standalone (numpy and Pillow only), it must turn any picture into exactly lab.images.prepare's input."""
    snip = snippet_preprocessing(look)
    for path in pictures(tmp_path):
        theirs = snip["prepare"](snip["read"](path))
        ours = prepare(read_image(path), look)
        assert theirs.shape == ours.shape == look.shape() and theirs.dtype == np.float32, path.name
        np.testing.assert_allclose(theirs, ours, atol=1e-6, err_msg=path.name)


def test_an_unknown_format_is_refused_with_the_choices():
    for bad in ("onnx", "", None, 3, "x" * 500):
        with pytest.raises(ExportError, match="choose one of keras, savedmodel, tflite, tflite_int8, card"):
            check_format(bad)
    assert set(FORMATS) == {"keras", "savedmodel", "tflite", "tflite_int8", "card"}


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard's own event reader on `folder`: {tag: [(step, value)]} of its scalar summaries
    (tf.summary.scalar writes them as tensors tagged for the scalars plugin, which the reader keeps under "tensors")."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0}).Reload()  # 0: every point
    return {tag: [(e.step, round(float(make_ndarray(e.tensor_proto)), 5)) for e in events.Tensors(tag)]
            for tag in events.Tags()["tensors"] if events.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"}


def test_a_runs_curves_are_written_for_tensorboard(tmp_path):
    """TensorBoard's own event reader finds loss and accuracy, training and validation, at the rows' steps."""
    rows = [{"step": 5, "epoch": 0.5, "loss": 1.5, "accuracy": 0.4},
            {"step": 10, "epoch": 1.0, "loss": 1.0, "accuracy": 0.6, "val_loss": 1.1, "val_accuracy": 0.55},
            {"step": 20, "epoch": 2.0, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.7, "val_accuracy": 0.75}]
    assert write_events(tmp_path, rows)
    train, val = scalars(tmp_path / "train"), scalars(tmp_path / "validation")
    assert set(train) == set(val) == {"loss", "accuracy"}
    assert train["loss"] == [(5, 1.5), (10, 1.0), (20, 0.5)] and train["accuracy"] == [(5, 0.4), (10, 0.6), (20, 0.8)]
    assert val["accuracy"] == [(10, 0.55), (20, 0.75)] and val["loss"] == [(10, 1.1), (20, 0.7)]


# --- a real run, exported in every format (TensorFlow backend, in this process) -----------------


@pytest.fixture(scope="module")
def exported(runtime, tmp_path_factory):
    from tests.export_check import produce

    out = tmp_path_factory.mktemp("export-tf")
    t0 = time.perf_counter()
    done = produce(out, "small_cnn", runtime)
    done["seconds"] = time.perf_counter() - t0
    done["out"] = out
    return done


def agreement(out: Path, env: dict) -> dict[str, float]:
    """Each download, loaded in a fresh process without the lab, against /predict's labels."""
    proc = subprocess.run([sys.executable, str(CHECK), "check", str(out)], cwd=out, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out / "lab.npz") as f:
        labels = f["labels"]
    return {fmt: float(np.mean(np.asarray(a) == labels)) for fmt, a in answers.items()}


def assert_agrees(scores: dict[str, float]) -> None:
    assert scores["keras"] == 1.0 and scores["savedmodel"] >= 0.99, scores
    assert scores["tflite"] >= 0.99, scores
    assert scores["tflite_int8"] >= 0.97, scores


@pytest.mark.slow
def test_every_download_loads_without_the_lab_and_agrees_with_predict(exported):
    assert_agrees(agreement(exported["out"], TF_ENV))


@pytest.mark.slow
def test_the_downloads_hold_the_model_the_card_the_script_and_an_example(exported):
    for fmt, path in exported["paths"].items():
        if fmt == "card":
            assert path.suffix == ".md" and path.read_text().startswith("# Model card: small_cnn")
            continue
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
        model_file = FORMATS[fmt].model_file
        assert {"MODEL_CARD.md", "classify.py", "example.png"} <= names, (fmt, names)
        assert model_file in names or any(n.startswith(model_file + "/") for n in names), (fmt, names)
        assert path.name.startswith("small_cnn-digits-") and path.name.endswith(f"-{fmt}.zip"), path.name


@pytest.mark.slow
def test_the_card_says_what_the_model_is_how_good_and_what_input_it_expects(exported):
    with zipfile.ZipFile(exported["paths"]["tflite_int8"]) as z:
        card = z.read("MODEL_CARD.md").decode()
    store, run_id = exported["store"], exported["run_id"]
    figures = store.evaluation(run_id)
    assert figures is not None
    assert f"**Validation accuracy:** {100 * figures.accuracy:.1f}% on {figures.total} validation pictures" in card
    for name, score in figures.per_class().items():  # per class, as lab.evaluation has it
        assert f"| {name} | " in card and f"| {score.support} |" in card
    assert "| 0 | 0 | 142 | 36 |" in card  # classes with their training and validation counts
    assert "`(batch, 8, 8, 1)`" in card and "pixel value / 255" in card and "Light on dark" in card and "**Crop:**" in card
    assert "| `learning_rate` | `0.003` |" in card and "| `epochs` | `1` |" in card
    assert "Intended use and limits" in card
    scales = re.search(r"int8 model's input:\*\* uint8, scale ([0-9.e-]+), zero point (\d+)", card)
    assert scales and abs(float(scales[1]) * 255 - 1) < 1e-3 and scales[2] == "0", card[-3000:]
    assert re.search(r"int8 model's output:\*\* uint8, scale [0-9.e-]+, zero point \d+", card)


@pytest.mark.slow
def test_the_cards_snippet_run_as_written_gives_the_try_tabs_label(exported, tmp_path):
    store, run_id = exported["store"], exported["run_id"]
    run = store.load(run_id)
    # a process each (TensorFlow's import is most of it), the example or a drawn digit; the float TFLite
    # snippet is the int8 one's code (it reads the dtypes and scales from the file)
    for fmt, picture in (("keras", "example.png"), ("savedmodel", str(EXAMPLES / "digit_7.png")),
                         ("tflite_int8", "example.png")):
        folder = tmp_path / fmt
        with zipfile.ZipFile(exported["paths"][fmt]) as z:
            z.extractall(folder)
        card = (folder / "MODEL_CARD.md").read_text()
        code = re.search(r"```python\n(.*?)```", card, re.S)[1]
        (folder / "snippet.py").write_text(code)
        args = [picture] if picture != "example.png" else []  # as written: no argument means the example
        proc = subprocess.run([sys.executable, "snippet.py", *args], cwd=folder, env=TF_ENV,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        label = proc.stdout.strip().splitlines()[-1].split(" (")[0]
        assert label == inference.predict(run, folder / picture).label, (fmt, picture, proc.stdout)


@pytest.mark.slow
def test_a_second_request_is_instant_and_builds_nothing(exported):
    exporter, run_id = exported["exporter"], exported["run_id"]
    root = exported["store"].root
    t0 = time.perf_counter()
    again = exporter.export(run_id, "tflite_int8", "alice")
    assert again == exported["paths"]["tflite_int8"] and time.perf_counter() - t0 < 0.5
    assert not list(root.glob(".tmp-*")), "the temporary build folders must be gone"


@pytest.mark.slow
def test_another_students_run_is_refused_as_if_it_were_missing(exported):
    exporter, run_id = exported["exporter"], exported["run_id"]
    for fmt in ("card", "keras"):  # a cached one too: the cache answers only the owner
        with pytest.raises(RunNotFound) as theirs:
            exporter.export(run_id, fmt, "bob")
        with pytest.raises(RunNotFound) as missing:
            exporter.export(run_id[:-4] + "0000", fmt, "bob")
        assert str(theirs.value).replace(run_id, "") == str(missing.value).replace(run_id[:-4] + "0000", "")
    with pytest.raises(ExportError):
        exporter.export(run_id, "onnx", "alice")


@pytest.mark.slow
def test_every_run_keeps_its_curves_for_tensorboard(exported):
    folder = exported["store"].root / exported["run_id"]
    metrics = exported["store"].metrics(exported["run_id"])
    train, val = scalars(folder / "train"), scalars(folder / "validation")
    assert [step for step, _ in train["loss"]] == list(metrics["step"]) and len(train["accuracy"]) == len(metrics)
    assert [v for _, v in val["accuracy"]] == [round(v, 5) for v in metrics["val_accuracy"].dropna()]
    assert [v for _, v in val["loss"]] == [round(v, 5) for v in metrics["val_loss"].dropna()]


@pytest.mark.slow
def test_exports_made_on_the_jax_backend_agree_too(tmp_path):
    """Trained and exported on JAX (model.export through jax2tf, then TensorFlow's converter)."""
    proc = subprocess.run([sys.executable, str(CHECK), "produce", str(tmp_path), "small_cnn"], cwd=ROOT, env=JAX_ENV,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["backend"] == "jax"
    assert_agrees(agreement(tmp_path, TF_ENV))
