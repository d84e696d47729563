"""RunStore keeps runs across restarts; inference reads digits like training digits."""

import numpy as np
import pytest
from PIL import Image

from lab import datasets, inference, training
from lab.hparams import validate
from lab.images import ImageError
from lab.runs import RunNotFound, RunStore

EXAMPLES = datasets.SAMPLE_DATA / "examples"


pytestmark = pytest.mark.slow  # trains real models


@pytest.fixture(scope="module")
def trained(runtime, tmp_path_factory):
    """One default run saved to disk (about five seconds on two CPU cores)."""
    hp = validate()
    log = training.TrainingLog()
    result = training.fit(hp, runtime, log)
    store = RunStore(tmp_path_factory.mktemp("runs"))
    run_id = store.save(owner="alice", hparams=hp, metrics=log.snapshot(), model=result.model,
                        class_names=result.class_names, look=datasets.load("digits").look, state="done")
    return store, run_id, log


def test_a_saved_run_survives_a_restart(trained):
    store, run_id, log = trained
    fresh = RunStore(store.root)  # a new process would make a new store
    info = fresh.info(run_id)
    assert info.owner == "alice" and info.hparams == validate() and info.state == "done"
    assert info.val_accuracy == pytest.approx(log.rows[-1]["val_accuracy"])
    df = fresh.metrics(run_id)
    assert len(df) == len(log.rows) and list(df["epoch"]) == [r["epoch"] for r in log.rows]


def test_runs_are_listed_per_owner(trained):
    store, run_id, _ = trained
    assert [r.run_id for r in store.list("alice")] == [run_id]
    assert store.list("bob") == [] and store.latest("bob") is None


@pytest.mark.parametrize("bad", ["../etc", "", "nope", ".tmp-x", "a/b"])
def test_unknown_or_hostile_run_ids_are_not_found(trained, bad):
    with pytest.raises(RunNotFound):
        trained[0].load(bad)


def test_loading_is_cached(trained):
    store, run_id, _ = trained
    assert store.load(run_id) is store.load(run_id)


def test_the_example_digits_are_read_correctly(trained):
    store, run_id, _ = trained
    run = store.load(run_id)
    right = 0
    for path in sorted(EXAMPLES.glob("digit_*.png")):
        pred = inference.predict(run, path)
        assert set(pred.confidences) == set(run.info.class_names)
        assert sum(pred.confidences.values()) == pytest.approx(1.0, abs=1e-4)
        assert pred.view.shape[0] >= 100 and pred.ms > 0
        right += pred.label == path.stem.split("_")[1]
    assert right >= len(list(EXAMPLES.glob("digit_*.png"))) - 1


def test_a_held_out_digit_drawn_black_on_white_is_read_like_a_training_digit(trained):
    store, run_id, _ = trained
    run = store.load(run_id)
    data = datasets.load("digits")
    _, va = datasets.split(data, 0.2, 42)
    correct = 0
    for i in va[:40]:
        digit = Image.fromarray(255 - data.x[i, :, :, 0]).resize((120, 120), Image.Resampling.BICUBIC)
        page = Image.new("L", (200, 200), 255)
        page.paste(digit, (40, 40))
        correct += inference.predict(run, page).label == data.class_names[data.y[i]]
    assert correct >= 32  # about the model's own validation accuracy, after the round trip


def test_bad_uploads_raise_a_plain_error(trained, tmp_path):
    store, run_id, _ = trained
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ImageError, match="not an image"):
        inference.predict(store.load(run_id), bad)


def test_webcam_frames_as_arrays_work(trained):
    """A webcam frame (an RGB array, the digit somewhere on a bright page) reads like the file itself."""
    store, run_id, _ = trained
    run = store.load(run_id)
    for digit in ("3", "7"):
        picture = Image.open(EXAMPLES / f"digit_{digit}.png").convert("RGB").resize((180, 180))
        frame = np.full((480, 640, 3), 235, np.uint8)  # the page around the digit
        frame[150:330, 230:410] = np.asarray(picture)
        from_frame, from_file = inference.predict(run, frame), inference.predict(run, EXAMPLES / f"digit_{digit}.png")
        assert from_frame.label == from_file.label == digit, (digit, from_frame.confidences)
