"""The shared objects every tab's handlers use, and the per-browser identity.

Per-student state lives in the browser (gr.BrowserState: a random client id and the last job
id), never in module globals; the shared JobManager and RunStore are explicit objects here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import gradio as gr

from lab.jobs import JobManager
from lab.runs import RunStore
from lab.user_datasets import UserDatasets


@dataclass
class Services:
    jobs: JobManager
    runs: RunStore
    accelerator: str  # one line: devices and backend
    datasets: UserDatasets  # the students' own datasets (uploads, webcam captures); jobs.catalog reads them too
    storage_note: str = ""


def browser_state() -> gr.BrowserState:
    """{'client': id, 'job': last job id}, kept in the browser's localStorage across reloads."""
    return gr.BrowserState({"client": "", "job": ""}, storage_key="vision-lab-session")


def ensure_client(session: dict | None) -> dict:
    """The session with a client id (made on first visit); never trusts its shape."""
    session = dict(session) if isinstance(session, dict) else {}
    if not isinstance(session.get("client"), str) or len(session["client"]) < 16:
        session["client"] = secrets.token_urlsafe(16)
    if not isinstance(session.get("job"), str):
        session["job"] = ""
    return session
