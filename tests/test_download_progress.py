"""Downloads report their progress: a real HTTP download on localhost through Keras' own get_file,
the way the dataset loaders fetch (nothing leaves this machine)."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import keras
import pytest
from keras.src.utils import file_utils

from lab import downloads


@pytest.fixture
def server(tmp_path):
    """A local web server with one 400 kB file; yields its URL."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "blob.bin").write_bytes(os.urandom(400_000))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/blob.bin"
    finally:
        httpd.shutdown()


def test_a_download_reports_rising_fractions_up_to_done(server, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    heard, original = [], file_utils.urlretrieve

    def fetch(home: Path):
        return Path(keras.utils.get_file(origin=server, cache_dir=str(home)))

    with downloads.reporting(lambda title, fraction: heard.append((title, fraction))):
        path = downloads._download("the blob", server, ("blob.bin",), fetch)
    assert path.stat().st_size == 400_000 and path.is_relative_to(tmp_path / "home")
    fractions = [f for _, f in heard]
    assert {t for t, _ in heard} == {"the blob"} and len(fractions) > 3
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] < 0.5
    assert file_utils.urlretrieve is original  # Keras' own function is back

    heard.clear()  # cached now: no download, nothing to report
    with downloads.reporting(lambda title, fraction: heard.append(fraction)):
        downloads._download("the blob", server, ("blob.bin",), fetch)
    assert heard == []


def test_without_a_listener_keras_downloads_as_usual(server, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    original = file_utils.urlretrieve
    path = downloads._download("the blob", server, ("blob.bin",),
                              lambda home: Path(keras.utils.get_file(origin=server, cache_dir=str(home))))
    assert path.stat().st_size == 400_000 and file_utils.urlretrieve is original
