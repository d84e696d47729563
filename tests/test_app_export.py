"""/export through gradio_client against a launched app (issue 15): a run's model and model card as a
file, only for the run's owner; a wrong format is refused in plain words; a second request is instant.
(The files' contents are checked against /predict in tests/test_export.py.)"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest
from gradio_client import Client

from tests.test_app_api import trained_student
from tests.test_app_privacy import refusal, same_answer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def alice(app):
    """A student with one 1-epoch run: (client, run id)."""
    client, status = trained_student(app, epochs=1)
    return client, status["run_id"]


def test_export_gives_the_model_zipped_with_its_card_then_the_same_file_at_once(alice):
    client, run_id = alice
    t0 = time.perf_counter()
    path = Path(client.predict(run_id, "tflite", api_name="/export"))
    first = time.perf_counter() - t0
    assert path.name.startswith("mlp-digits-") and path.name.endswith("-tflite.zip"), path.name
    with zipfile.ZipFile(path) as z:
        assert {"model.tflite", "MODEL_CARD.md", "classify.py", "example.png"} <= set(z.namelist())
        card = z.read("MODEL_CARD.md").decode()
    assert run_id in card and "## The input it expects" in card and "```python" in card
    t0 = time.perf_counter()
    again = Path(client.predict(run_id, "tflite", api_name="/export"))
    assert again.read_bytes() == path.read_bytes()
    assert time.perf_counter() - t0 < max(1.0, first / 2), "a second request must read the kept file"
    card_only = Path(client.predict(run_id, "card", api_name="/export"))
    assert card_only.suffix == ".md" and card_only.read_text().startswith("# Model card: mlp")


def test_a_wrong_format_is_refused_in_plain_words(alice):
    client, run_id = alice
    for bad in ("onnx", "", "../../etc/passwd"):
        text = refusal(lambda: client.predict(run_id, bad, api_name="/export"))
        assert "choose one of keras, savedmodel, tflite, tflite_int8, card" in text, text


def test_another_students_run_gets_the_answer_a_missing_one_gets(app, alice):
    client, run_id = alice
    client.predict(run_id, "keras", api_name="/export")  # built and kept: the cache must not leak it either
    bob = Client(app.url, verbose=False)
    fake = run_id[:-4] + ("0000" if not run_id.endswith("0000") else "1111")
    theirs = refusal(lambda: bob.predict(run_id, "keras", api_name="/export"))
    missing = refusal(lambda: bob.predict(fake, "keras", api_name="/export"))
    assert "no run" in theirs and same_answer(theirs, run_id, missing, fake), (theirs, missing)
    text = refusal(lambda: client.predict("../../etc", "keras", api_name="/export"))
    assert "no run" in text and str(app.runs_dir) not in text
