"""The teacher's class (lab.classroom): the key, names, locks, the preset, limits, stopping, clearing.

Fast: the queue trains with tests/test_jobs.py's stand-in, runs are folders written by hand.
"""

from __future__ import annotations

import json
import time

import pytest

from lab.classroom import Classroom, ClassroomError, LockError, WrongKey, check, parse_locks, settle
from lab.hparams import HParamsError, validate
from lab.jobs import JobError
from lab.runs import RunStore
from tests.test_jobs import FakeRuns, fake_train, manager

LESSON = {"model": {"allowed": ["mlp", "small_cnn"]}, "epochs": {"min": 1, "max": 20}, "dataset": {"allowed": ["digits"]}}


def write_run(store: RunStore, run_id: str, owner: str, best: float) -> None:
    """A run folder as RunStore.list reads it (no real model: the board never loads one)."""
    folder = store.root / run_id
    folder.mkdir()
    (folder / "hparams.json").write_text(json.dumps(validate().to_dict()))
    (folder / "meta.json").write_text(json.dumps({
        "run_id": run_id, "owner": owner, "created": time.time(), "state": "done", "class_names": ["a", "b"],
        "look": {"height": 8, "width": 8, "channels": 1}, "val_accuracy": best, "best_val_accuracy": best}))
    (folder / "metrics.csv").write_text(f"step,epoch,loss,accuracy,val_accuracy\n1,1,0.5,0.6,{best}\n")
    (folder / "model.keras").write_bytes(b"")


class NoRuns(FakeRuns):
    """The stand-in store of tests/test_jobs.py, listing no saved runs."""

    def list(self, owner=None):
        return []


def classroom(train=None, runs=None, key="open-sesame", datasets=None):
    runs = runs or NoRuns()
    return Classroom(manager(train or fake_train(), runs), runs, datasets=datasets, key=key)


# -- the key --------------------------------------------------------------------------------------
@pytest.mark.parametrize("wrong", [None, "", "open-sesam", "open-sesame!", "OPEN-SESAME", 42, ["open-sesame"], "x" * 10_000])
def test_only_the_teachers_key_opens_the_console(wrong):
    room = classroom()
    room.check_key("open-sesame")
    room.check_key(" open-sesame ")  # pasted with spaces
    with pytest.raises(WrongKey, match="not the teacher key"):
        room.check_key(wrong)


def test_without_a_key_a_long_random_one_is_made():
    a, b = classroom(key=None), classroom(key=None)
    assert a.key != b.key and len(a.key) >= 16
    a.check_key(a.key)
    with pytest.raises(WrongKey):
        a.check_key(b.key)
    with pytest.raises(ClassroomError, match="at least 8"):
        classroom(key="sesame")  # 6 characters: a short word is guessed quickly


# -- locks ----------------------------------------------------------------------------------------
def test_locks_parse_the_issues_example_and_an_empty_object_lifts_them():
    locks = parse_locks(LESSON)
    assert locks["model"].allowed == ("mlp", "small_cnn") and locks["epochs"].high == 20
    assert {k: v.to_json() for k, v in locks.items()} == LESSON
    assert parse_locks({}) == {} and parse_locks(None) == {}


@pytest.mark.parametrize("raw, says", [
    ({"modle": {"allowed": ["mlp"]}}, "no setting called 'modle'"),
    ({"model": {"allowed": ["gpt-5"]}}, "Model (model) must be one of"),
    ({"model": {"allowed": []}}, "1 to 100 values"),
    ({"model": {"min": 1}}, "only a number has a range"),
    ({"epochs": {"min": 30, "max": 20}}, "min (30) is above max (20)"),
    ({"epochs": {"max": 500}}, "between 1 and 200"),
    ({"epochs": {}}, "a lock is"),
    ({"epochs": {"max": 5, "most": 3}}, "a lock is"),
    ({"learning_rate": {"min": 0.5, "max": 0.9}}, "usual steps"),
    ("model=mlp", "locks must be an object"),
])
def test_bad_locks_are_refused_naming_the_setting(raw, says):
    with pytest.raises(ClassroomError) as e:
        parse_locks(raw)
    assert says in str(e.value)


def test_settings_outside_a_lock_are_refused_naming_it_and_inside_pass():
    locks = parse_locks(LESSON)
    check(validate(model="small_cnn", epochs=20), locks)
    with pytest.raises(LockError) as e:
        check(validate(model="resnet", epochs=200), locks)
    said = str(e.value)
    assert "teacher locked" in said and "Model (model): mlp, small_cnn, not resnet" in said
    assert "Epochs (epochs): 1 to 20, not 200" in said
    assert isinstance(e.value, JobError)  # the queue's own refusal: every caller already shows it


def test_settle_moves_settings_inside_the_locks():
    locks = parse_locks({**LESSON, "learning_rate": {"allowed": [0.01]}})
    hp = settle(validate(model="efficientnet_b0", fine_tune_epochs=3, epochs=50, learning_rate=0.3), locks)
    assert (hp.model, hp.epochs, hp.learning_rate, hp.fine_tune_epochs) == ("mlp", 20, 0.01, 0)
    inside = validate(model="small_cnn", epochs=7)
    assert settle(inside, locks).epochs == 7 and settle(inside, locks).model == "small_cnn"


# -- the preset and precedence -------------------------------------------------------------------
def test_precedence_locks_then_preset_then_link_or_last_settings():
    room = classroom()
    linked = validate(model="resnet", epochs=9, learning_rate=0.01)
    assert room.settings_for(linked) == linked, "no preset, no locks: the link's settings"
    v0 = room.version
    room.push_preset({"model": "small_cnn", "epochs": 40})
    assert room.version > v0
    hp = room.settings_for(linked)
    assert (hp.model, hp.epochs, hp.learning_rate) == ("small_cnn", 40, 0.01), "the preset wins; the rest stays"
    room.set_locks({"epochs": {"max": 20}})
    assert room.settings_for(linked).epochs == 20, "a lock wins over the preset"
    room.push_preset({})
    assert room.settings_for(linked).model == "resnet"


def test_a_bad_preset_is_refused_with_every_problem_named():
    room = classroom()
    with pytest.raises(HParamsError) as e:
        room.push_preset({"epochs": 0, "colour": "red"})
    assert "colour" in str(e.value) and "Epochs (epochs)" in str(e.value)
    assert room.preset == {}


# -- names ----------------------------------------------------------------------------------------
def test_students_are_numbered_or_nicknamed_never_shown_by_id():
    room = classroom()
    ids = ["client-aaaaaaaaaaaaaaaa", "api-bbbbbbbbbbbb", "client-cccccccccccccccc"]
    assert [room.join(i) for i in ids] == ["student 1", "student 2", "student 3"]
    assert room.join(ids[0]) == "student 1", "joining again keeps the number"
    assert room.set_nickname(ids[1], "  Ada\u0000 \n Lovelace ") == "Ada Lovelace"
    assert room.set_nickname(ids[2], "ada lovelace") == "ada lovelace (2)", "a classmate's name is not taken over"
    with pytest.raises(ClassroomError, match="how the board names"):
        room.set_nickname(ids[0], "Student 2")
    with pytest.raises(ClassroomError, match="at most 24"):
        room.set_nickname(ids[0], "x" * 25)
    assert room.set_nickname(ids[1], "") == "student 2", "an empty nickname goes back to the number"
    board = json.dumps(room.board().to_json())
    assert not any(i in board for i in ids)
    assert [s["student"] for s in room.board().to_json()["students"]] == ["student 1", "student 2", "ada lovelace (2)"]



def test_the_board_remembers_at_most_max_students_the_least_recently_seen_forgotten():
    room = classroom()
    room.max_students = 3
    room.join("a"), room.join("b"), room.set_nickname("c", "Cleo")
    room.join("a")  # seen again: now the most recent
    assert room.join("d") == "student 4", "numbers are never reused"
    assert room.name("b") == "a student who has left", "b was seen least recently"
    assert [s.student for s in room.board().students] == ["student 1", "Cleo", "student 4"]
    room.join("e"), room.join("f")
    assert room.name("c") == "a student who has left" and "c" not in room._nicknames  # the nickname goes too
    assert len(room._joined) == 3 and len(room._nicknames) == 0
    assert room.set_nickname("g", "Cleo") == "Cleo", "a forgotten student's nickname is free again"


# -- the queue, steered ---------------------------------------------------------------------------
def test_the_queue_refuses_a_job_outside_the_locks_and_admits_its_student():
    room = classroom()
    room.set_locks(LESSON)
    with pytest.raises(LockError, match="Model \\(model\\): mlp, small_cnn"):
        room.jobs.submit("eve", validate(model="resnet"))
    assert room.board().students == [], "a refused job does not join anyone"
    job = room.jobs.submit("eve", validate(epochs=3))
    assert room.jobs.wait(job.job_id, 10).state == "done"
    row = room.board().to_json()["students"][0]
    assert row["student"] == "student 1" and row["state"] == "done" and row["job_id"] == job.job_id
    room.set_locks({})
    room.jobs.submit("eve", validate(model="resnet"))  # lifted


def test_pause_holds_the_queue_and_resume_lets_it_run():
    room = classroom(fake_train(rows=3, delay=0.01))
    room.pause(True)
    job = room.jobs.submit("ann", validate())
    time.sleep(0.3)
    assert room.jobs.get(job.job_id).state == "queued" and room.board().paused
    assert room.board().queue_length == 1
    room.pause(False)
    assert room.jobs.wait(job.job_id, 10).state == "done"
    with pytest.raises(ClassroomError):
        room.pause("yes")


def test_the_time_limit_stops_a_long_job_and_says_why():
    room = classroom(fake_train(rows=500, delay=0.02))
    room.set_limits({"job_seconds": 0.3})
    job = room.jobs.submit("ann", validate())
    ended = room.jobs.wait(job.job_id, 10)
    assert ended.state == "stopped" and "time limit (0.3 s a job)" in ended.message, ended.message
    assert 2 < len(ended.log.rows) < 500
    room.set_limits({"job_seconds": 0})
    assert room.jobs.job_seconds is None and room.limits.job_seconds is None


def test_queue_max_limits_waiting_jobs_and_bad_limits_are_refused():
    room = classroom(fake_train(rows=500, delay=0.02))
    room.set_limits({"queue_max": 1})
    room.pause(True)
    room.jobs.submit("a", validate())
    with pytest.raises(JobError, match="queue is full \\(1 jobs"):
        room.jobs.submit("b", validate())
    assert room.board().limits.to_json() == {"job_seconds": None, "queue_max": 1}
    for bad in ({"queue_max": 0}, {"queue_max": 2.5}, {"job_seconds": -1}, {"job_seconds": float("nan")},
                {"seconds": 5}, [], {"queue_max": True}):
        with pytest.raises(ClassroomError):
            room.set_limits(bad)
    room.stop_all()


def test_the_teacher_stops_one_job_or_all_and_the_student_is_told():
    room = classroom(fake_train(rows=500, delay=0.02))
    running = room.jobs.submit("ann", validate())
    queued = room.jobs.submit("bob", validate())
    while room.jobs.get(running.job_id).state != "running":
        time.sleep(0.01)
    stopped = room.stop_job(queued.job_id)
    assert stopped["state"] == "stopped" and stopped["student"] == "student 2"
    assert "stopped by the teacher" in room.jobs.get(queued.job_id).message
    with pytest.raises(ClassroomError, match="no job called"):
        room.stop_job("nope")
    assert room.stop_all() == [running.job_id]
    ended = room.jobs.wait(running.job_id, 10)
    assert ended.state == "stopped" and ended.message.startswith("stopped by the teacher"), ended.message


def test_clearing_the_class_deletes_every_run_and_dataset(tmp_path):
    import numpy as np

    from lab.images import ImageLook
    from lab.user_datasets import UserDatasets

    from lab.captures import CaptureStore

    store, own = RunStore(tmp_path / "runs"), UserDatasets(tmp_path / "datasets")
    room = classroom(runs=store, datasets=own)
    room.captures = webcam = CaptureStore(min_interval=0)
    for owner, frames in (("ann", 3), ("cy", 2)):  # webcam frames not saved as a dataset yet
        webcam.add_class(owner, "me")
        webcam.start(owner, "me")
        for _ in range(frames):
            assert webcam.add_frame(owner, np.full((20, 20, 3), 200, np.uint8))
    for owner in ("ann", "bob"):
        room.join(owner)
    write_run(store, "r1", "ann", 0.7)
    write_run(store, "r2", "ann", 0.9)
    write_run(store, "r3", "bob", 0.5)
    own.add("bob", "pets", np.zeros((4, 8, 8, 1), np.uint8), [0, 1, 0, 1], ["cat", "dog"],
            ImageLook(8, 8, 1), source="zip")
    best = {s.student: (s.run_id, s.best_val_accuracy) for s in room.board().students}
    assert best == {"student 1": ("r2", 0.9), "student 2": ("r3", 0.5)}
    assert room.clear() == {"stopped_jobs": 0, "deleted_runs": 3, "deleted_datasets": 1, "deleted_frames": 5}
    assert store.list() == [] and own.list("bob") == []
    assert webcam.classes("ann") == webcam.classes("cy") == [] and not webcam.add_frame("ann", np.zeros((20, 20, 3)))
    assert [s.run_id for s in room.board().students] == [None, None], "the students stay, their work goes"


def test_a_pushed_preset_is_compiled_while_the_queue_is_idle():
    """Issue 18: the class trains the preset next, so the worker warms its programs up first."""
    import time

    seen = []

    def train(hp, runtime, log, data=None):
        seen.append((hp.model, hp.epochs))
        return fake_train()(hp, runtime, log, data)

    room = classroom(train=train)
    room.push_preset({"model": "small_cnn", "epochs": 40})
    deadline = time.time() + 5
    while not room.jobs.warmth.startswith("warm:") and time.time() < deadline:
        time.sleep(0.01)
    assert seen == [("small_cnn", 1)] and room.jobs.warmth.startswith("warm: small_cnn")
    room.push_preset({})  # withdrawing it compiles nothing
    time.sleep(0.2)
    assert seen == [("small_cnn", 1)]
