"""Shared fixtures: the engine on the TensorFlow backend in-process, and a launched app."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("VISION_LAB_BACKEND", "tensorflow")  # launched apps too (one JAX app test sets jax)
# No start-up warm-up in launched apps: tests count queue places from the first job (test_app_jax turns it on)
os.environ.setdefault("VISION_LAB_WARM_UP", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("VISION_LAB_PRETRAINED", "0")  # no test downloads ImageNet weights (tests that need the path patch it)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_heap_freeze(monkeypatch):
    """lab_app.launch() freezes the start-up heap (gc.freeze, lab_app.settle_heap) for the server's sake; in the
    test process, which every test shares, what is alive then would never be collected: launch() in a test
    (with a stand-in app) leaves the heap alone. Launched apps (subprocesses) freeze as in a lesson."""
    import gc

    monkeypatch.setattr(gc, "freeze", lambda: None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LaunchedApp:
    """`python lab_app.py` in a subprocess, as a teacher would start it."""

    def __init__(self, runs_dir: Path, extra_env: dict | None = None, port: int | None = None, args=()):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.runs_dir = runs_dir
        self.log_path = runs_dir.parent / f"app-{self.port}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(extra_env or {})}
        self._log = open(self.log_path, "a")  # a restarted app on the same port appends
        self.proc = subprocess.Popen(
            [sys.executable, "lab_app.py", "--port", str(self.port), "--runs-dir", str(runs_dir), *args],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lab_app.py exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"lab_app.py did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-5000:]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


@contextlib.contextmanager
def running_app(runs_dir: Path, **kwargs):
    """A LaunchedApp (kwargs as its own), ready, and closed afterwards."""
    launched = LaunchedApp(runs_dir, **kwargs)
    try:
        launched.wait_ready()
        yield launched
    finally:
        launched.close()


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """One launched app shared by the app and browser tests (each test uses its own client/session)."""
    with running_app(tmp_path_factory.mktemp("app") / "runs") as launched:
        yield launched


@pytest.fixture(scope="session")
def runtime():
    """The in-process engine runtime (TensorFlow backend, one CPU device)."""
    from lab import backend

    return backend.runtime()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's, through Playwright) for one test module; tests open contexts in it."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
