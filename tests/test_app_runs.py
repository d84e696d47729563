"""The runs endpoints of a launched app (issue 13): /runs, /run_metrics, /delete_run, through gradio_client.

Two Clients are two students: each sees, reads and deletes only their own runs, and another's run
id gets exactly the answer a missing one gets.
"""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file

from lab.datasets import SAMPLE_DATA
from tests.test_app_api import wait_for
from tests.test_app_privacy import refusal, same_answer

pytestmark = pytest.mark.slow
KEYS = {"run_id", "title", "created", "state", "hparams", "val_accuracy", "train_seconds", "images_per_second"}


@pytest.fixture(scope="module")
def alice(app):
    """A student who trained twice, only the learning rate changed: (client, [older run, newer run])."""
    client = Client(app.url, verbose=False)
    runs = []
    for lr in (0.003, 0.03):
        job = client.predict({"epochs": 2, "learning_rate": lr}, api_name="/train")
        status = wait_for(client, job["job_id"])
        assert status["state"] == "done", status
        runs.append(status)
    return client, runs


def test_runs_lists_the_callers_runs_newest_first_named_by_what_they_are(alice):
    client, (older, newer) = alice
    runs = client.predict(api_name="/runs")
    assert [r["run_id"] for r in runs] == [newer["run_id"], older["run_id"]]
    first = runs[0]
    assert KEYS <= set(first), first
    assert first["title"].startswith("mlp · lr 0.03 · epochs 2 · ") and first["title"].endswith("%"), first["title"]
    assert runs[1]["title"].startswith("mlp · lr 0.003 · epochs 2 · "), runs[1]["title"]
    assert first["state"] == "done" and first["hparams"]["learning_rate"] == 0.03
    assert first["val_accuracy"] == pytest.approx(newer["metrics"][-1]["val_accuracy"])
    assert first["train_seconds"] > 0 and first["images_per_second"] > 0
    assert runs[0]["created"] > runs[1]["created"]


def test_run_metrics_returns_the_saved_curve(alice):
    client, (older, _) = alice
    out = client.predict(older["run_id"], api_name="/run_metrics")
    assert out["run_id"] == older["run_id"]
    rows = out["metrics"]
    assert all(set(r) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"} for r in rows), rows[0]
    assert [r["epoch"] for r in rows] == [r["epoch"] for r in older["metrics"]]
    assert [r["epoch"] for r in rows if r["val_accuracy"] is not None] == [1, 2]
    assert rows[-1]["val_accuracy"] == pytest.approx(older["metrics"][-1]["val_accuracy"])
    assert rows[0]["val_loss"] is None  # between epochs nothing was validated: null, not NaN


def test_another_student_sees_none_of_them_and_is_refused_as_if_they_were_missing(app, alice):
    client, (older, _) = alice
    bob = Client(app.url, verbose=False)
    assert bob.predict(api_name="/runs") == []
    run_id = older["run_id"]
    fake = run_id[:-4] + ("0000" if not run_id.endswith("0000") else "1111")
    for endpoint in ("/run_metrics", "/delete_run"):
        theirs = refusal(lambda: bob.predict(run_id, api_name=endpoint))
        missing = refusal(lambda: bob.predict(fake, api_name=endpoint))
        assert same_answer(theirs, run_id, missing, fake), (endpoint, theirs, missing)
        assert "no run" in theirs
    assert run_id in [r["run_id"] for r in client.predict(api_name="/runs")], "bob's /delete_run must not delete it"


@pytest.mark.parametrize("bad", ["", "../../etc/passwd", "a/b", ".tmp-x", "x" * 5000, 12345, None])
def test_hostile_or_malformed_ids_are_refused_plainly(alice, bad, app):
    client, _ = alice
    for endpoint in ("/run_metrics", "/delete_run"):
        text = refusal(lambda: client.predict(bad, api_name=endpoint))
        assert "no run" in text and str(app.runs_dir) not in text and len(text) < 300, text


def test_delete_run_removes_only_that_run(app, alice):
    client, (older, newer) = alice
    assert client.predict(older["run_id"], api_name="/delete_run") == {"deleted": older["run_id"]}
    assert [r["run_id"] for r in client.predict(api_name="/runs")] == [newer["run_id"]]
    assert not (app.runs_dir / older["run_id"]).exists()
    # gone everywhere: deleting it again, its curve and predicting with it are refused as missing
    assert "no run" in refusal(lambda: client.predict(older["run_id"], api_name="/delete_run"))
    assert "no run" in refusal(lambda: client.predict(older["run_id"], api_name="/run_metrics"))
    digit = handle_file(str(SAMPLE_DATA / "examples" / "digit_3.png"))
    assert "no run" in refusal(lambda: client.predict(digit, older["run_id"], api_name="/predict"))
    assert client.predict(digit, newer["run_id"], api_name="/predict")["run_id"] == newer["run_id"]
