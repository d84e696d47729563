"""The teacher's endpoints (gr.api) and a student's /set_nickname.

Every teacher endpoint takes the teacher's key first and refuses a wrong one (lab.classroom checks
it in constant time) before reading anything else; then the class's state is the teacher's to see
and change: the board (display names only, never a student's id), locks, limits, the preset, the
queue's pause, stopping jobs, clearing the class.

    /class_board(teacher_key)            -> {students: [...], queue_length, paused, locks, limits}
    /set_locks(teacher_key, locks)       -> {locks}        ({} lifts them)
    /set_limits(teacher_key, limits)     -> {limits}       ({job_seconds, queue_max})
    /push_preset(teacher_key, hparams)   -> {preset}       ({} withdraws it)
    /pause(teacher_key, paused)          -> {paused}
    /stop_job(teacher_key, job_id)       -> {job_id, student, state, message}
    /stop_all(teacher_key)               -> {stopped: [job ids]}
    /clear_class(teacher_key)            -> {stopped_jobs, deleted_runs, deleted_datasets, deleted_frames}
    /set_nickname(nickname)              -> {student: the name the board shows}
"""

from __future__ import annotations

from typing import Callable

import gradio as gr

from lab.classroom import ClassroomError
from lab.hparams import HParamsError

from components.services import Services, refused


def register_class_api(services: Services, owner_of: Callable[[gr.Request | None], str]) -> None:
    """Declare the class's endpoints inside the current gr.Blocks (`owner_of` as components/api.py has it)."""
    room = services.classroom
    if room is None:
        return

    def as_teacher(key, act):
        """Check the key, then act; the class's refusals become plain gr.Errors."""
        try:
            room.check_key(key)
            return act()
        except (ClassroomError, HParamsError) as e:
            raise refused(str(e)) from None

    def class_board(teacher_key: str) -> dict:
        """The class now: every student (display name), their newest job's state, epoch and validation accuracy,
        their best run (best_val_accuracy, run_id) and newest job_id; the queue's length and pause; locks; limits."""
        return as_teacher(teacher_key, lambda: room.board().to_json())

    def set_locks(teacher_key: str, locks: dict) -> dict:
        """Lock knobs for every student: {"model": {"allowed": ["mlp", "small_cnn"]}, "epochs": {"min": 1, "max": 20}};
        {} lifts every lock. Jobs outside the locks are refused, from the page and the API."""
        return as_teacher(teacher_key, lambda: {"locks": {k: v.to_json() for k, v in room.set_locks(locks).items()}})

    def set_limits(teacher_key: str, limits: dict) -> dict:
        """{"job_seconds": 120, "queue_max": 30}: a job is stopped after job_seconds (0 or null: no limit); at most
        queue_max jobs wait at once. A missing key keeps its value."""
        return as_teacher(teacher_key, lambda: {"limits": room.set_limits(limits).to_json()})

    def push_preset(teacher_key: str, hparams: dict) -> dict:
        """Settings every student's Train tab takes within seconds ({"model": "small_cnn", "epochs": 5});
        {} withdraws the preset. Locks still win over it."""
        return as_teacher(teacher_key, lambda: {"preset": room.push_preset(hparams)})

    def pause(teacher_key: str, paused: bool) -> dict:
        """Pause (true) or resume (false) the class's queue: queued jobs wait, a running one goes on."""
        return as_teacher(teacher_key, lambda: {"paused": room.pause(paused)})

    def stop_job(teacher_key: str, job_id: str) -> dict:
        """Stop any student's job (its job_id from /class_board); a partial run is kept."""
        return as_teacher(teacher_key, lambda: room.stop_job(job_id))

    def stop_all(teacher_key: str) -> dict:
        """Stop every queued and running job."""
        return as_teacher(teacher_key, lambda: {"stopped": room.stop_all()})

    def clear_class(teacher_key: str) -> dict:
        """The end of a lesson: stop every job, delete every run and every student's own dataset."""
        return as_teacher(teacher_key, room.clear)

    def set_nickname(nickname: str, request: gr.Request = None) -> dict:
        """The name the teacher's class board shows for you (at most 24 characters; "" for "student N")."""
        try:
            return {"student": room.set_nickname(owner_of(request), nickname)}
        except ClassroomError as e:
            raise refused(str(e)) from None

    for fn in (class_board, set_locks, set_limits, push_preset, pause, stop_job, stop_all, set_nickname):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
    gr.api(clear_class, api_name="clear_class", concurrency_limit=1)  # waits for stopped jobs, deletes folders
