"""Students' work is kept and private, through the API of a launched app (issue 9).

Two gradio_client Clients are two students; a script inventing identities is a flood; the app is
restarted on the same port and runs folder as a teacher would after a crash.
"""

from __future__ import annotations

import re

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from lab.datasets import SAMPLE_DATA
from tests.conftest import LaunchedApp
from tests.test_app_api import wait_for

pytestmark = pytest.mark.slow
DIGIT = SAMPLE_DATA / "examples" / "digit_0.png"


def refusal(call) -> str:
    with pytest.raises(AppError) as e:
        call()
    return str(e.value)


def same_answer(theirs: str, their_id: str, missing: str, missing_id: str) -> bool:
    return theirs.replace(their_id, "ID") == missing.replace(missing_id, "ID")


def test_two_clients_never_reach_each_others_jobs_runs_or_datasets(app, tmp_path):
    from tests.zips import pets_zip

    alice, bob = Client(app.url, verbose=False), Client(app.url, verbose=False)
    long_job = alice.predict({"epochs": 200}, api_name="/train")
    job_id = long_job["job_id"]
    try:
        for endpoint in ("/job_status", "/stop"):
            theirs = refusal(lambda: bob.predict(job_id, api_name=endpoint))
            missing = refusal(lambda: bob.predict("x" * len(job_id), api_name=endpoint))
            assert same_answer(theirs, job_id, missing, "x" * len(job_id)), (theirs, missing)
        assert alice.predict(job_id, api_name="/job_status")["state"] in ("queued", "running"), \
            "bob's /stop must not stop alice's job"
    finally:
        alice.predict(job_id, api_name="/stop")
    status = wait_for(alice, job_id)
    run_id = status["run_id"]
    assert run_id, status

    mine = alice.predict(handle_file(str(DIGIT)), run_id, api_name="/predict")
    assert mine["run_id"] == run_id
    fake_id = run_id[:-4] + ("0000" if not run_id.endswith("0000") else "1111")
    theirs = refusal(lambda: bob.predict(handle_file(str(DIGIT)), run_id, api_name="/predict"))
    missing = refusal(lambda: bob.predict(handle_file(str(DIGIT)), fake_id, api_name="/predict"))
    assert same_answer(theirs, run_id, missing, fake_id), (theirs, missing)
    # An empty run id means the caller's own latest run: bob has none, whoever else has trained.
    assert "no trained run" in refusal(lambda: bob.predict(handle_file(str(DIGIT)), "", api_name="/predict"))

    added = alice.predict(handle_file(str(pets_zip(tmp_path / "p.zip"))), "pets", api_name="/add_dataset")
    theirs = refusal(lambda: bob.predict({"dataset": added["dataset"], "epochs": 1}, api_name="/train"))
    fake = added["dataset"][:-3] + ("000" if not added["dataset"].endswith("000") else "111")
    missing = refusal(lambda: bob.predict({"dataset": fake, "epochs": 1}, api_name="/train"))
    assert same_answer(theirs, added["dataset"], missing, fake), (theirs, missing)


def test_over_long_ids_are_refused_without_touching_the_disk(app):
    client = Client(app.url, verbose=False)
    for endpoint in ("/job_status", "/stop"):
        msg = refusal(lambda: client.predict("j" * 256, api_name=endpoint))
        assert "no job" in msg and str(app.runs_dir) not in msg and len(msg) < 300
    msg = refusal(lambda: client.predict(handle_file(str(DIGIT)), "r" * 256, api_name="/predict"))
    assert "no run" in msg and str(app.runs_dir) not in msg and "too long" not in msg.lower()


def test_a_flood_of_made_up_identities_is_bounded(tmp_path):
    """A script that makes a new Client per job gets a clear refusal; students already in keep going."""
    flood = LaunchedApp(tmp_path / "runs", args=["--max-queue", "2", "--new-students-per-address", "4"])
    try:
        flood.wait_ready()
        clients = [Client(flood.url, verbose=False) for _ in range(5)]
        jobs = [c.predict({"epochs": 200}, api_name="/train") for c in clients[:3]]  # 1 runs, 2 wait
        assert "queue is full" in refusal(lambda: clients[3].predict({"epochs": 200}, api_name="/train"))
        assert "too many new students" in refusal(lambda: clients[4].predict({"epochs": 1}, api_name="/train"))
        clients[1].predict(jobs[1]["job_id"], api_name="/stop")  # a place in the queue comes free
        again = clients[3].predict({"epochs": 1}, api_name="/train")  # a student already in is not new
        assert again["state"] == "queued"
        for c, j in [*zip(clients, jobs), (clients[3], again)]:
            c.predict(j["job_id"], api_name="/stop")
        assert clients[0].predict(jobs[0]["job_id"], api_name="/job_status")["state"] in ("stopped", "running")
    finally:
        flood.close()


def test_runs_survive_a_restart_and_the_same_client_still_reaches_them(tmp_path):
    runs = tmp_path / "runs"
    first = LaunchedApp(runs)
    try:
        first.wait_ready()
        client = Client(first.url, verbose=False)
        job = client.predict({"epochs": 3}, api_name="/train")
        run_id = wait_for(client, job["job_id"])["run_id"]
    finally:
        first.close()
    (runs / f".tmp-{run_id}x").mkdir()  # as a save killed half-way would leave it
    second = LaunchedApp(runs, port=first.port)
    try:
        second.wait_ready()
        out = client.predict(handle_file(str(DIGIT)), "", api_name="/predict")  # "" = my latest run
        assert out["run_id"] == run_id and re.fullmatch(r"\d", out["label"])
        assert not list(runs.glob(".tmp-*")), "start-up sweeps half-written saves"
        stranger = Client(second.url, verbose=False)
        assert "no trained run" in refusal(lambda: stranger.predict(handle_file(str(DIGIT)), "", api_name="/predict"))
    finally:
        second.close()
