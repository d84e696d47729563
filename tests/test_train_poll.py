"""The Train tab's poll: a tick that finds nothing new sends nothing; the queue line says place and ETA; a script's
/job_status poll with `since` gets only the new metric rows."""

from types import SimpleNamespace

import gradio as gr
import pytest

from components.services import Services
from components.train_tab import create_train_tab, place, poll_update, status_markdown
from lab.hparams import validate
from lab.jobs import JobManager
from tests.test_jobs import FakeCatalog, FakeRuns, FakeRuntime, fake_train


class Catalog(FakeCatalog):
    def describe(self, name, owner=None):
        return SimpleNamespace(num_classes=2)


def skipped(update) -> bool:
    return update == gr.skip()


def test_a_poll_that_finds_nothing_new_sends_nothing_and_a_change_is_sent():
    jm = JobManager(FakeRuns(), FakeRuntime, train=fake_train(), catalog=Catalog())
    jm.pause(True)  # the jobs wait: nothing changes between two ticks (and a paused queue has no ETA)
    services = Services(jobs=jm, runs=FakeRuns(), accelerator="fake", datasets=None)
    with gr.Blocks():
        tab = create_train_tab()
        picker = gr.Dropdown()
    jm.submit("someone else", validate())
    job = jm.submit("student-aaaaaaaaaaaaaaaa", validate())
    state = {"client": "student-aaaaaaaaaaaaaaaa", "job": job.job_id}
    first = poll_update(tab, services, state, -1, "", picker, lambda s: None)
    line = first[tab.status]
    assert "2nd in line" in line and "about" not in line and first[tab.shown] == line and first[tab.seen] == 0
    again = poll_update(tab, services, state, 0, line, picker, lambda s: None)
    assert all(skipped(u) for u in again.values()), {k: v for k, v in again.items() if not skipped(v)}
    jm.stop(jm.order()[0])  # the job ahead leaves: the line changes, and only the line is sent
    moved = poll_update(tab, services, state, 0, line, picker, lambda s: None)
    assert "next in line" in moved[tab.status] and moved[tab.shown] == moved[tab.status]
    assert skipped(moved[tab.loss_plot]) and skipped(moved[tab.seen]) and skipped(moved[tab.timer])
    jm.stop(job.job_id)


def test_places_read_as_ordinals():
    assert [place(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


def test_the_queued_line_names_place_and_eta():
    from lab.contract import JobView, Progress

    view = JobView("j", "queued", "", None, 3, 5, Progress(), validate(), eta_s=41.0)
    assert status_markdown(view).startswith("⏳ **Queued**: 3rd in line, about 40 s;")
    assert "2 jobs ahead finish" in status_markdown(view)


def test_job_status_since_sends_only_the_newer_metric_rows():
    from components.api import register_api

    jm = JobManager(FakeRuns(), FakeRuntime, train=fake_train(rows=5, delay=0), catalog=Catalog())
    services = Services(jobs=jm, runs=FakeRuns(), accelerator="fake", datasets=None)
    with gr.Blocks() as demo:
        register_api(services)
    job_status = next(f.fn for f in demo.fns.values() if f.api_name == "job_status")
    me = SimpleNamespace(session_hash="s1", headers={}, client=None)
    job = jm.submit("api-s1", validate())
    jm.wait(job.job_id, timeout=10)
    everything = job_status(job.job_id, request=me)
    assert everything["state"] == "done" and everything["metrics_total"] == 5
    assert [r["step"] for r in everything["metrics"]] == [1, 2, 3, 4, 5]
    newer = job_status(job.job_id, 3, request=me)
    assert [r["step"] for r in newer["metrics"]] == [4, 5] and newer["metrics_total"] == 5
    assert newer["metrics"] == everything["metrics"][3:]
    assert job_status(job.job_id, 5, request=me)["metrics"] == []  # nothing new: an empty list, the rest as before
    assert job_status(job.job_id, 9, request=me)["metrics"] == []
    assert job_status(job.job_id, 3.0, request=me)["metrics"] == newer["metrics"]  # a JSON number
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(gr.Error, match="since"):
            job_status(job.job_id, bad, request=me)
    with pytest.raises(gr.Error, match="no job"):  # another student's job, with or without since
        job_status(job.job_id, 3, request=SimpleNamespace(session_hash="s2", headers={}, client=None))


def test_launch_freezes_the_start_up_heap_and_gradio_summarises_rarely(monkeypatch):
    """The full collections that block every request while a job ends (py-spy: 0.3-0.5 s each, lab.job_memory.job_memory)
    walk only what was made after start-up; Gradio's analytics summary is not rebuilt after every poll."""
    import gc
    import os

    import lab_app

    calls = []
    monkeypatch.setattr(lab_app, "build_app", lambda *a, **k: SimpleNamespace(launch=lambda **kw: calls.append("serve")))
    monkeypatch.setattr(lab_app.backend, "configure", lambda name: SimpleNamespace(backend="fake", reason="test"))
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    lab_app.launch()
    assert calls == ["collect", "freeze", "serve"]
    assert int(os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"]) >= 100
