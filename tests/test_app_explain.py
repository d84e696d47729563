"""/explain through gradio_client (issue 14): the prediction, the method and the heatmap as an image
file at the Try tab's size, only with the caller's own runs ("" = the caller's latest)."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from lab import datasets, explain
from tests.test_app_api import wait_for
from tests.test_app_privacy import refusal, same_answer

pytestmark = pytest.mark.slow
DIGIT_7 = datasets.SAMPLE_DATA / "examples" / "digit_7.png"


@pytest.fixture(scope="module")
def trained(app):
    """A short small_cnn run of a student of its own."""
    client = Client(app.url, verbose=False)
    job = client.predict({"model": "small_cnn", "epochs": 3}, api_name="/train")
    status = wait_for(client, job["job_id"])
    assert status["state"] == "done" and status["run_id"], status
    return client, status


def test_explain_answers_like_predict_and_sends_the_heatmap_as_a_picture(trained):
    client, status = trained
    out = client.predict(handle_file(str(DIGIT_7)), "", api_name="/explain")  # "": the latest run
    same = client.predict(handle_file(str(DIGIT_7)), status["run_id"], api_name="/predict")
    assert out["run_id"] == status["run_id"] and out["method"] == explain.GRAD_CAM
    assert out["label"] == same["label"]
    assert list(out["confidences"]) == list(same["confidences"])  # most likely first, every class
    assert all(out["confidences"][k] == pytest.approx(v, abs=1e-4) for k, v in same["confidences"].items())
    with Image.open(out["heatmap"]) as picture:  # downloaded by the client
        heat = np.asarray(picture.convert("RGB"))
    assert heat.shape == (explain.DISPLAY_SIZE, explain.DISPLAY_SIZE, 3)  # the Try tab's size
    # coloured where the model looked, grey (the digit's own pixels) elsewhere
    coloured = np.abs(heat.astype(int) - heat.mean(axis=-1, keepdims=True)).max(axis=-1) > 30
    assert 0.02 < coloured.mean() < 0.9


def test_another_students_run_is_refused_as_if_missing(app, trained):
    _, status = trained
    run_id = status["run_id"]
    bob = Client(app.url, verbose=False)
    fake_id = run_id[:-4] + ("0000" if not run_id.endswith("0000") else "1111")
    picture = handle_file(str(DIGIT_7))
    theirs = refusal(lambda: bob.predict(picture, run_id, api_name="/explain"))
    missing = refusal(lambda: bob.predict(picture, fake_id, api_name="/explain"))
    assert same_answer(theirs, run_id, missing, fake_id), (theirs, missing)
    assert "no trained run" in refusal(lambda: bob.predict(picture, "", api_name="/explain"))


def test_a_file_that_is_not_a_picture_gets_a_plain_refusal(trained, tmp_path):
    client, _ = trained
    bogus = tmp_path / "notes.png"
    bogus.write_text("not a picture")
    assert "not an image" in refusal(lambda: client.predict(handle_file(str(bogus)), "", api_name="/explain"))
