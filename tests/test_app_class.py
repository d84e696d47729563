"""The teacher's endpoints through gradio_client, against `python lab_app.py --teacher-key KEY` (issue 16).

Every teacher endpoint refuses a wrong key before doing anything, and does its work with the
right one; students are separate Clients (one Client is one student). Jobs are tiny (mlp on the
digits, 1 epoch) or held in a paused queue, so the module stays quick.
"""

from __future__ import annotations

import json
import time

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tests.conftest import running_app
from tests.test_app_api import wait_for

pytestmark = pytest.mark.slow
KEY = "owl-7-quartz"
TINY = {"epochs": 1}


@pytest.fixture(scope="module")
def lesson(tmp_path_factory):
    # every endpoint is tried with three wrong keys: more than a minute's budget (lab.teacher_key)
    with running_app(tmp_path_factory.mktemp("class") / "runs", args=("--teacher-key", KEY),
                     extra_env={"VISION_LAB_TEACHER_TRIES": "1000"}) as launched:
        yield launched


@pytest.fixture(scope="module")
def teacher(lesson):
    return Client(lesson.url, verbose=False)


def refusal(call) -> str:
    with pytest.raises(AppError) as e:
        call()
    return str(e.value)


def board(teacher) -> dict:
    return teacher.predict(KEY, api_name="/class_board")


def settle_queue(teacher, timeout=120):
    """Until no job of the class is queued or running (the next test starts from a quiet queue)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        b = board(teacher)
        if not b["queue_length"] and all(s["state"] not in ("queued", "running") for s in b["students"]):
            return b
        time.sleep(0.3)
    raise TimeoutError(board(teacher))


TEACHER_CALLS = {  # endpoint -> the arguments after the key (harmless ones: a wrong key must stop them all)
    "/class_board": (), "/set_locks": ({"model": {"allowed": ["mlp"]}},), "/set_limits": ({"queue_max": 1},),
    "/push_preset": ({"epochs": 3},), "/pause": (True,), "/stop_job": ("nope",), "/stop_all": (),
    "/clear_class": (),
}


@pytest.mark.parametrize("endpoint", TEACHER_CALLS)
@pytest.mark.parametrize("wrong", ["", "owl-7-quart", KEY.upper()])
def test_every_teacher_endpoint_refuses_a_wrong_key(teacher, lesson, endpoint, wrong):
    student = Client(lesson.url, verbose=False)
    said = refusal(lambda: student.predict(wrong, *TEACHER_CALLS[endpoint], api_name=endpoint))
    assert "not the teacher key" in said, said
    b = board(teacher)  # and nothing changed
    assert not b["paused"] and b["locks"] == {} and b["limits"]["queue_max"] != 1


def test_refusals_leave_no_tracebacks_in_the_servers_output(lesson):
    # A guessing student (or any bad request) must not fill the teacher's Colab cell with what look like crashes.
    student = Client(lesson.url, verbose=False)
    for wrong in ("owl", "quartz"):
        refusal(lambda: student.predict(wrong, api_name="/class_board"))
    refusal(lambda: student.predict({"epochs": 10**6}, api_name="/train"))
    output = lesson.log()
    assert "not the teacher key" not in output and "gradio.exceptions.Error" not in output, output[-3000:]


def test_students_join_with_nicknames_train_and_the_board_shows_them_by_name_only(teacher, lesson):
    alice, bob = Client(lesson.url, verbose=False), Client(lesson.url, verbose=False)
    assert alice.predict("Alice", api_name="/set_nickname") == {"student": "Alice"}
    assert "at most 24" in refusal(lambda: bob.predict("b" * 40, api_name="/set_nickname"))
    job = alice.predict(TINY, api_name="/train")
    bob_job = bob.predict(TINY, api_name="/train")  # bob never picked a name: "student N"
    done = wait_for(alice, job["job_id"])
    wait_for(bob, bob_job["job_id"])
    b = settle_queue(teacher)
    rows = {s["student"]: s for s in b["students"]}
    assert "Alice" in rows, rows
    me = rows["Alice"]
    assert me["state"] == "done" and me["job_id"] == job["job_id"] and me["run_id"] == done["run_id"]
    assert me["best_val_accuracy"] == pytest.approx(done["metrics"][-1]["val_accuracy"])
    assert me["epoch"] == pytest.approx(1.0) and me["val_accuracy"] == me["best_val_accuracy"]
    assert any(name.startswith("student ") and r["job_id"] == bob_job["job_id"] for name, r in rows.items())
    text = json.dumps(b)
    assert alice.session_hash not in text and bob.session_hash not in text, "the board shows names, never ids"
    assert set(b) == {"students", "queue_length", "paused", "locks", "limits"}


def test_locks_refuse_a_students_api_call_naming_the_lock_and_an_empty_object_lifts_them(teacher, lesson):
    student = Client(lesson.url, verbose=False)
    locks = {"model": {"allowed": ["mlp", "small_cnn"]}, "epochs": {"min": 1, "max": 20}, "dataset": {"allowed": ["digits"]}}
    assert teacher.predict(KEY, locks, api_name="/set_locks") == {"locks": locks}
    said = refusal(lambda: student.predict({"model": "resnet", "epochs": 1}, api_name="/train"))
    assert "teacher locked Model (model): mlp, small_cnn, not resnet" in said, said
    said = refusal(lambda: student.predict({"epochs": 50}, api_name="/train"))
    assert "Epochs (epochs): 1 to 20, not 50" in said, said
    assert board(teacher)["locks"] == locks
    assert "no setting called" in refusal(lambda: teacher.predict(KEY, {"colour": {"allowed": [1]}}, api_name="/set_locks"))
    assert teacher.predict(KEY, {}, api_name="/set_locks") == {"locks": {}}
    job = student.predict({"model": "resnet", "epochs": 1, "batch_size": 256}, api_name="/train")  # lifted
    teacher.predict(KEY, job["job_id"], api_name="/stop_job")
    settle_queue(teacher)


def test_pause_then_stop_one_job_then_stop_all_then_resume(teacher, lesson):
    ann, ben = Client(lesson.url, verbose=False), Client(lesson.url, verbose=False)
    assert teacher.predict(KEY, True, api_name="/pause") == {"paused": True}
    try:
        first = ann.predict(TINY, api_name="/train")
        second = ben.predict(TINY, api_name="/train")
        time.sleep(1)
        assert ann.predict(first["job_id"], api_name="/job_status")["state"] == "queued", "a paused queue holds jobs"
        b = board(teacher)
        assert b["paused"] and b["queue_length"] == 2
        stopped = teacher.predict(KEY, first["job_id"], api_name="/stop_job")
        assert stopped["state"] == "stopped" and stopped["student"].startswith("student ")
        status = ann.predict(first["job_id"], api_name="/job_status")
        assert status["state"] == "stopped" and "stopped by the teacher" in status["message"], status
        assert teacher.predict(KEY, api_name="/stop_all") == {"stopped": [second["job_id"]]}
        assert ben.predict(second["job_id"], api_name="/job_status")["state"] == "stopped"
        assert "no job called" in refusal(lambda: teacher.predict(KEY, "x" * 12, api_name="/stop_job"))
    finally:
        assert teacher.predict(KEY, False, api_name="/pause") == {"paused": False}
    again = ann.predict(TINY, api_name="/train")
    assert wait_for(ann, again["job_id"])["state"] == "done", "resumed: the queue runs again"


def test_limits_stop_a_long_job_and_cap_the_queue(teacher, lesson):
    student, other = Client(lesson.url, verbose=False), Client(lesson.url, verbose=False)
    limits = teacher.predict(KEY, {"job_seconds": 3, "queue_max": 1}, api_name="/set_limits")
    assert limits == {"limits": {"job_seconds": 3.0, "queue_max": 1}}
    try:
        assert "job_seconds" in refusal(lambda: teacher.predict(KEY, {"job_seconds": -5}, api_name="/set_limits"))
        teacher.predict(KEY, True, api_name="/pause")
        student.predict({"epochs": 200}, api_name="/train")
        assert "queue is full (1 jobs" in refusal(lambda: other.predict(TINY, api_name="/train"))
        teacher.predict(KEY, False, api_name="/pause")
        job = board(teacher)
        long_job = next(s["job_id"] for s in job["students"] if s["state"] in ("queued", "running"))
        status = wait_for(student, long_job, timeout=90)
        assert status["state"] == "stopped" and "time limit (3 s a job)" in status["message"], status
    finally:
        teacher.predict(KEY, False, api_name="/pause")
        teacher.predict(KEY, {"job_seconds": 0, "queue_max": 100}, api_name="/set_limits")
    assert board(teacher)["limits"] == {"job_seconds": None, "queue_max": 100}


def test_a_preset_is_checked_and_kept_and_clear_class_deletes_everyones_work(teacher, lesson):
    assert teacher.predict(KEY, {"model": "small_cnn", "epochs": 4}, api_name="/push_preset") == \
        {"preset": {"model": "small_cnn", "epochs": 4}}
    assert "colour" in refusal(lambda: teacher.predict(KEY, {"colour": "red"}, api_name="/push_preset"))
    teacher.predict(KEY, {}, api_name="/push_preset")
    student = Client(lesson.url, verbose=False)
    job = student.predict(TINY, api_name="/train")
    wait_for(student, job["job_id"])
    assert student.predict(api_name="/runs"), "the student has a run"
    settle_queue(teacher)
    cleared = teacher.predict(KEY, api_name="/clear_class")
    assert cleared["deleted_runs"] >= 1 and cleared["stopped_jobs"] == 0 and cleared["deleted_frames"] == 0, cleared
    assert student.predict(api_name="/runs") == []
    assert not [p for p in lesson.runs_dir.iterdir() if not p.name.startswith(".")], "every run folder went"
    assert all(s["run_id"] is None for s in board(teacher)["students"])
