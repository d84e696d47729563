"""The webcams send the true frame and the lab can serve https (the browser side is in
tests/test_browser_webcam.py)."""

from __future__ import annotations

import types

import gradio as gr
import pytest

import lab_app
from components import webcam


def webcams() -> list[gr.Image]:
    from components.capture_tab import create_capture_tab
    from components.try_tab import create_try_tab

    with gr.Blocks():
        with gr.Tab("Try"):
            try_tab = create_try_tab()
        with gr.Tab("Capture"):
            capture_tab = create_capture_tab()
    return [try_tab.webcam, capture_tab.webcam]


def test_webcams_send_unmirrored_frames_and_mirror_only_the_preview():
    # Gradio's default (mirror=True) mirrors the frames it sends, in 6.24 and 6.31: see components/webcam.py.
    for cam in webcams():
        assert cam.webcam_options.mirror is False, cam.elem_id
        assert webcam.WEBCAM_CLASS in cam.elem_classes and cam.streaming and cam.sources == ["webcam"]
    assert f".{webcam.WEBCAM_CLASS} video {{ transform: scaleX(-1); }}" in lab_app.CSS


def test_the_insecure_note_is_hidden_unless_the_browser_says_the_page_is_not_secure():
    assert "<div class=\"insecure-note\" role=\"note\" hidden>" in webcam.INSECURE_HTML
    assert "window.isSecureContext" in webcam.INSECURE_JS
    for flag in ("--share", "--ssl-certfile", "--ssl-keyfile", "localhost"):
        assert flag in webcam.INSECURE_HTML


@pytest.fixture
def launched(monkeypatch):
    """lab_app.main's call to gr.Blocks.launch, without building or starting anything."""
    calls = []
    monkeypatch.setattr(lab_app.backend, "configure",
                        lambda name: types.SimpleNamespace(backend="tensorflow", reason="test"))
    monkeypatch.setattr(lab_app, "build_app",
                        lambda *a, **k: types.SimpleNamespace(launch=lambda **kw: calls.append(kw)))
    return calls


def test_ssl_flags_reach_gradio_launch(launched):
    lab_app.main(["--host", "0.0.0.0", "--ssl-certfile", "cert.pem", "--ssl-keyfile", "key.pem"])
    (kw,) = launched
    assert kw["server_name"] == "0.0.0.0"
    assert (kw["ssl_certfile"], kw["ssl_keyfile"]) == ("cert.pem", "key.pem")
    assert kw["ssl_verify"] is False  # a classroom's self-signed certificate must not stop the start-up check


def test_without_ssl_flags_the_lab_serves_plain_http(launched):
    lab_app.main([])
    (kw,) = launched
    assert kw.get("ssl_certfile") is None and kw.get("ssl_keyfile") is None and "ssl_verify" not in kw


def test_a_certificate_needs_its_key(capsys):
    with pytest.raises(SystemExit):
        lab_app.parse_args(["--ssl-certfile", "cert.pem"])
    assert "--ssl-keyfile" in capsys.readouterr().err
