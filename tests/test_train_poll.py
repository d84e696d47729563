"""The Train tab's poll: a tick that finds nothing new sends nothing; the queue line says place and ETA."""

from types import SimpleNamespace

import gradio as gr

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
