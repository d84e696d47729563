"""The shared objects every tab's handlers use, and the per-browser identity.

Per-student state lives in the browser (gr.BrowserState: a random client id and the last job
id), never in module globals; the shared JobManager and RunStore are explicit objects here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import gradio as gr

from lab.admission import Admission, AdmissionError
from lab.export import Exporter
from lab.classroom import Classroom
from lab.jobs import JobManager
from lab.runs import RunStore
from lab.user_datasets import UserDatasets


PREDICT_POOL = "predict"  # the concurrency id every prediction event shares (Try tab and /predict)
PREDICT_LIMIT = 2  # predictions decoded at once: each may hold a picture of up to 16 MP


@dataclass
class Services:
    jobs: JobManager
    runs: RunStore
    accelerator: str  # one line: devices and backend
    datasets: UserDatasets  # the students' own datasets (uploads, webcam captures); jobs.catalog reads them too
    storage_note: str = ""
    admission: Admission = field(default_factory=Admission)  # new identities per address
    classroom: Classroom | None = None  # the teacher's class: locks, preset, limits, the board (lab.classroom)
    exports: Exporter | None = None  # the runs' downloads (lab.export); made from runs and the catalog when not given

    def __post_init__(self):
        if self.exports is None:
            self.exports = Exporter(self.runs, self.jobs.catalog)

    def admit(self, owner: str, request: gr.Request | None) -> None:
        """Refuse costly work (training, a new dataset) to a flood of made-up identities: gr.Error."""
        try:
            self.admission.admit(address_of(request), owner)
        except AdmissionError as e:
            raise refused(str(e)) from None


def refused(message: str) -> gr.Error:
    """The gr.Error a refusal raises: the student (or script) reads `message`; the server's output
    gets no traceback, which a flood of bad or hostile requests would otherwise fill (a Colab cell,
    a terminal, a Space's log) with what look like crashes."""
    return gr.Error(message, print_exception=False)


def address_of(request: gr.Request | None) -> str:
    """The network address a request came from (behind a share tunnel or a proxy: the same for all)."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "") or "unknown")


def browser_state(secret: str | None = None) -> gr.BrowserState:
    """{'client': id, 'job': last job id}, kept in the browser's localStorage across reloads.

    `secret` (lab.storage.persistent_secret) must stay the same across restarts of the app, or
    every browser's stored id becomes unreadable and students lose sight of their work.
    """
    return gr.BrowserState({"client": "", "job": ""}, storage_key="vision-lab-session", secret=secret)


def ensure_client(session: dict | None) -> dict:
    """The session with a client id (made on first visit); never trusts its shape."""
    session = dict(session) if isinstance(session, dict) else {}
    if not isinstance(session.get("client"), str) or len(session["client"]) < 16:
        session["client"] = secrets.token_urlsafe(16)
    if not isinstance(session.get("job"), str):
        session["job"] = ""
    return session


def dataset_choices(services: Services, owner: str) -> list[tuple[str, str]]:
    """(label, value) pairs for a dataset dropdown: the built-in datasets, then the student's own."""
    from lab.datasets import DATASETS

    return [(name, name) for name in DATASETS] + [(i.title(), i.dataset_id) for i in services.datasets.list(owner)]


def dataset_dropdown(services: Services, session, value: str | None = None) -> gr.Dropdown:
    """A dropdown update listing the student's datasets; `value` selected when given."""
    choices = dataset_choices(services, ensure_client(session)["client"])
    if value is not None and value not in [v for _, v in choices]:
        value = None  # someone else's or deleted: keep the current choice
    return gr.Dropdown(choices=choices, value=value) if value is not None else gr.Dropdown(choices=choices)
