"""The launched app, used the way a script or a teacher's notebook would: through gradio_client."""

import io
import struct
import time
import zlib

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from lab.datasets import SAMPLE_DATA

pytestmark = pytest.mark.slow


def wait_for(client, job_id, states=("done", "stopped", "failed"), timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.predict(job_id, api_name="/job_status")
        if status["state"] in states:
            return status
        time.sleep(0.3)
    raise TimeoutError(status)


def trained_student(app, **hparams):
    """A new student (a Client of their own) who trained one job to the end: (client, final status)."""
    client = Client(app.url, verbose=False)
    job = client.predict(hparams, api_name="/train")
    status = wait_for(client, job["job_id"])
    assert status["state"] == "done" and status["run_id"], status
    return client, status


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


@pytest.fixture(scope="module")
def finished(client):
    """A short default job trained to the end through the API."""
    job = client.predict({"epochs": 6}, api_name="/train")
    return job, wait_for(client, job["job_id"])


def test_train_runs_to_the_end_with_metrics(finished):
    job, status = finished
    assert job["hparams"]["epochs"] == 6 and job["hparams"]["model"] == "mlp"  # missing keys took defaults
    assert status["state"] == "done" and status["run_id"]
    assert job["position"] >= 0 and "eta_s" in job and status["eta_s"] is None and status["position"] == 0
    rows = status["metrics"]
    assert {"epoch", "loss", "accuracy"} <= set(rows[0])
    assert [r["epoch"] for r in rows if "val_accuracy" in r] == [1, 2, 3, 4, 5, 6]
    assert rows[-1]["val_accuracy"] > 0.85 and rows[-1]["loss"] < rows[0]["loss"]


def test_job_status_since_sends_only_the_rows_after_it(client, finished):
    job, status = finished
    total = status["metrics_total"]
    assert total == len(status["metrics"]) > 3
    newer = client.predict(job["job_id"], total - 2, api_name="/job_status")  # a script that has all but two
    assert newer["metrics"] == status["metrics"][-2:] and newer["metrics_total"] == total
    assert client.predict(job["job_id"], total, api_name="/job_status")["metrics"] == []
    with pytest.raises(AppError, match="since"):
        client.predict(job["job_id"], -1, api_name="/job_status")


def test_predict_reads_an_example_digit(client, finished):
    _, status = finished
    out = client.predict(handle_file(str(SAMPLE_DATA / "examples" / "digit_3.png")), status["run_id"], api_name="/predict")
    assert out["label"] == "3" and out["run_id"] == status["run_id"]
    assert set(out["confidences"]) == {str(i) for i in range(10)}
    assert abs(sum(out["confidences"].values()) - 1) < 1e-3 and out["ms"] > 0
    latest = client.predict(handle_file(str(SAMPLE_DATA / "examples" / "digit_3.png")), "", api_name="/predict")
    assert latest["run_id"] == status["run_id"]  # empty run_id: this caller's latest run


def test_stop_ends_a_long_job_quickly_and_keeps_the_partial_run(app):
    client = Client(app.url, verbose=False)
    job = client.predict({"epochs": 200, "model": "small_cnn"}, api_name="/train")
    wait_for(client, job["job_id"], states=("running",))
    deadline = time.time() + 60
    while not client.predict(job["job_id"], api_name="/job_status")["metrics"] and time.time() < deadline:
        time.sleep(0.2)
    t = time.time()
    client.predict(job["job_id"], api_name="/stop")
    status = wait_for(client, job["job_id"], timeout=10)
    assert time.time() - t < 2.5  # two seconds, plus a round trip on a loaded machine
    assert status["state"] == "stopped" and status["run_id"]
    assert status["metrics"][-1]["epoch"] < 200
    out = client.predict(handle_file(str(SAMPLE_DATA / "examples" / "digit_7.png")), status["run_id"], api_name="/predict")
    assert out["label"] in out["confidences"]


@pytest.mark.parametrize(
    "hparams, words",
    [
        ({"batch_size": 3.7}, "whole number"),
        ({"batch_size": 10**9}, "between 1 and 1024"),
        ({"learning_rate": -1}, "between"),
        ({"model": "unknown-model"}, "must be one of"),
        ({"epochs": "many"}, "number"),
        ({"nonsense": 1}, "unknown setting"),
    ],
)
def test_values_no_slider_allows_get_a_clear_error(client, hparams, words):
    with pytest.raises(AppError, match=words):
        client.predict(hparams, api_name="/train")


def _png_claiming(width, height):
    """A tiny PNG whose header claims a huge size (a decompression bomb)."""
    raw = zlib.compress(b"\x00" * 64)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_bad_files_get_a_clear_error_and_the_app_keeps_serving(client, finished, tmp_path):
    run_id = finished[1]["run_id"]
    text = tmp_path / "homework.png"
    text.write_text("not a picture")
    buf = io.BytesIO()
    Image.new("RGB", (300, 300), "white").save(buf, "JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(buf.getvalue()[:400])
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(60000, 60000))
    for path, words in [(text, "not an image"), (truncated, "incomplete|truncated"), (bomb, "too large")]:
        with pytest.raises(AppError, match=words):
            client.predict(handle_file(str(path)), run_id, api_name="/predict")
    ok = client.predict(handle_file(str(SAMPLE_DATA / "examples" / "digit_0.png")), run_id, api_name="/predict")
    assert ok["label"] == "0"


def test_unknown_ids_are_refused_plainly(client):
    with pytest.raises(AppError, match="no job"):
        client.predict("not-a-job", api_name="/job_status")
    with pytest.raises(AppError, match="no job"):
        client.predict("not-a-job", api_name="/stop")
    with pytest.raises(AppError, match="no run"):
        client.predict(handle_file(str(SAMPLE_DATA / "examples" / "digit_0.png")), "../../etc", api_name="/predict")


def test_one_active_job_per_caller(app):
    client = Client(app.url, verbose=False)
    first = client.predict({"epochs": 200}, api_name="/train")
    try:
        with pytest.raises(AppError, match="already have a job") as refused:
            client.predict({"epochs": 1}, api_name="/train")
        assert first["job_id"] not in str(refused.value), "no internal ids in messages for students"
    finally:
        client.predict(first["job_id"], api_name="/stop")
        wait_for(client, first["job_id"])


def test_add_dataset_from_a_zip_then_train_and_predict_on_it(client, tmp_path):
    from tests.zips import RED, picture, pets_zip

    z = pets_zip(tmp_path / "pets.zip", n_cats=15, n_dogs=15, extra=[("dogs/fake.png", b"not an image")])
    added = client.predict(handle_file(str(z)), "pets", api_name="/add_dataset")
    assert added["classes"] == ["cats", "dogs"] and added["counts"] == {"cats": 15, "dogs": 15}
    assert sum(added["skipped"].values()) == 1 and added["dataset"].startswith("pets@")
    assert "Pictures used at 64×64, in colour" in added["notes"][0]  # their own size (short sides 30 and 50)
    job = client.predict({"dataset": added["dataset"], "model": "small_cnn", "epochs": 3, "batch_size": 8},
                         api_name="/train")
    status = wait_for(client, job["job_id"])
    assert status["state"] == "done", status["message"]
    (tmp_path / "red.png").write_bytes(picture(RED, (64, 48), seed=99))
    out = client.predict(handle_file(str(tmp_path / "red.png")), status["run_id"], api_name="/predict")
    assert out["label"] == "cats" and set(out["confidences"]) == {"cats", "dogs"}


def test_add_dataset_refuses_bad_archives_clearly(client, app, tmp_path):
    from tests.zips import make_zip, picture, RED

    not_zip = tmp_path / "photo.zip"
    not_zip.write_bytes(picture(RED))
    with pytest.raises(AppError, match="not a zip archive"):
        client.predict(handle_file(str(not_zip)), "x", api_name="/add_dataset")
    one = make_zip(tmp_path / "one.zip", [(f"cats/{i}.png", picture(RED, seed=i)) for i in range(3)])
    with pytest.raises(AppError, match="at least 2 classes"):
        client.predict(handle_file(str(one)), "", api_name="/add_dataset")


def test_a_dataset_is_private_to_the_client_that_added_it(client, app, tmp_path):
    from tests.zips import pets_zip

    added = client.predict(handle_file(str(pets_zip(tmp_path / "p.zip"))), "mine", api_name="/add_dataset")
    other = Client(app.url, verbose=False)
    with pytest.raises(AppError, match="No dataset"):
        other.predict({"dataset": added["dataset"], "epochs": 1}, api_name="/train")
