"""/evaluate through gradio_client (issue 12): a run's figures and its mistakes as image files, only
for the student whose run it is, and a run from before evaluations were kept evaluated once on demand."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from lab import datasets
from lab.hparams import validate
from lab.runs import EVALUATION, MISTAKES
from tests.test_app_api import trained_student, wait_for
from tests.test_app_privacy import refusal, same_answer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(app):
    """A short default run of a student of its own."""
    return trained_student(app, epochs=3)


def test_evaluate_gives_the_figures_and_the_mistakes_as_pictures(trained):
    client, status = trained
    out = client.predict("", api_name="/evaluate")  # "": the caller's latest run
    assert out["run_id"] == status["run_id"] and out["state"] == "done"
    classes = out["classes"]
    assert classes == [str(i) for i in range(10)]
    confusion = out["confusion"]  # rows true, columns predicted
    assert len(confusion) == 10 and all(len(row) == 10 for row in confusion)
    total = sum(map(sum, confusion))
    data = datasets.load("digits")
    hp = validate()  # the defaults: the run's validation pictures are split as training split them
    _, val = datasets.split(data, hp.validation_split, hp.seed)
    assert total == len(val) and [sum(row) for row in confusion] == np.bincount(data.y[val]).tolist()
    assert out["accuracy"] == pytest.approx(sum(confusion[i][i] for i in range(10)) / total)
    assert out["accuracy"] == pytest.approx(status["metrics"][-1]["val_accuracy"], abs=1e-6)  # the final one
    assert set(out["per_class"]) == set(classes)
    assert out["per_class"]["3"]["support"] == sum(confusion[3])
    assert out["per_class"]["3"]["recall"] == pytest.approx(confusion[3][3] / sum(confusion[3]))
    mistakes = out["mistakes"]
    assert 0 < len(mistakes) <= 50 and len(mistakes) == min(50, total - sum(confusion[i][i] for i in range(10)))
    confidences = [m["confidence"] for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)  # most confident first
    first = mistakes[0]
    assert first["true"] != first["predicted"] and {first["true"], first["predicted"]} <= set(classes)
    with Image.open(first["image"]) as picture:  # downloaded by the client: the 8x8 digit itself
        assert picture.size == (8, 8)
    assert client.predict(status["run_id"], api_name="/evaluate")["confusion"] == confusion


def test_another_students_run_is_refused_as_if_missing(app, trained):
    _, status = trained
    run_id = status["run_id"]
    bob = Client(app.url, verbose=False)
    fake_id = run_id[:-4] + ("0000" if not run_id.endswith("0000") else "1111")
    theirs = refusal(lambda: bob.predict(run_id, api_name="/evaluate"))
    missing = refusal(lambda: bob.predict(fake_id, api_name="/evaluate"))
    assert same_answer(theirs, run_id, missing, fake_id), (theirs, missing)
    assert "no trained run" in refusal(lambda: bob.predict("", api_name="/evaluate"))


def test_a_run_from_before_evaluations_is_evaluated_once_then_saved(app, trained):
    client, status = trained
    folder = app.runs_dir / status["run_id"]
    before = client.predict(status["run_id"], api_name="/evaluate")
    for name in (EVALUATION, MISTAKES):  # as a run saved before this change has it
        (folder / name).unlink()
    again = client.predict(status["run_id"], api_name="/evaluate")
    assert (folder / EVALUATION).exists() and (folder / MISTAKES).exists()  # saved for next time
    assert again["confusion"] == before["confusion"] and again["accuracy"] == pytest.approx(before["accuracy"])
    assert [m["index"] for m in again["mistakes"]] == [m["index"] for m in before["mistakes"]]
    stamp = (folder / EVALUATION).stat().st_mtime_ns
    client.predict(status["run_id"], api_name="/evaluate")
    assert (folder / EVALUATION).stat().st_mtime_ns == stamp  # read back, not evaluated again


def test_a_two_class_zip_with_too_few_pictures_gets_a_verdict_in_plain_words(app, tmp_path):
    """Two classes of look-alike pictures, six of each: the job's message says what is wrong."""
    from gradio_client import handle_file

    from tests.zips import make_zip, picture

    grey = (128, 128, 128)
    entries = [(f"{kind}/{kind}_{i}.png", picture(grey, (40, 30), "PNG", i)) for kind in ("cats", "dogs") for i in range(6)]
    client = Client(app.url, verbose=False)
    added = client.predict(handle_file(str(make_zip(tmp_path / "lookalikes.zip", entries))), "lookalikes",
                           api_name="/add_dataset")
    job = client.predict({"dataset": added["dataset"], "epochs": 3}, api_name="/train")
    status = wait_for(client, job["job_id"])
    assert status["state"] == "done", status
    assert "⚠️" in status["message"] and "validation pictures" in status["message"] and "Add pictures" in status["message"]
    out = client.predict("", api_name="/evaluate")
    assert out["classes"] == ["cats", "dogs"] and sum(map(sum, out["confusion"])) < 30
    assert any("validation pictures" in v for v in out["verdicts"])
