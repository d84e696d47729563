"""The webcam as the Try and Capture tabs use it: a mirrored preview, the true frame for the model,
and a plain note when the browser will not give the page a camera.

Mirroring: Gradio's default `gr.WebcamOptions(mirror=True)` mirrors the frame it *sends*, not only
the preview. Its webcam (6.24, Colab's, and 6.31 alike) draws each frame onto a canvas and, when
`mirror_webcam` is set, draws it again with `scale(-1, 1)` before encoding it; so a "7" shown to the
camera reached the model backwards. Here the webcam sends frames as the camera sees them
(`mirror=False`: a plain `drawImage`, in both versions) and CSS mirrors only the live `<video>`
preview, the selfie view students expect. Nothing on the server flips anything.

Secure pages only: browsers give the camera (`navigator.mediaDevices`) only to https pages and to
http://localhost. A lab started with `--host 0.0.0.0` and opened as http://<address>:7860 on a
classroom LAN has no camera; Gradio then shows a raw error. The note below each webcam says why
and what to do; it is shown by the browser only when `window.isSecureContext` is false.
"""

from __future__ import annotations

import gradio as gr

WEBCAM_CLASS = "lab-webcam"
# The live preview only: frames sent to the server are never mirrored (mirror=False above).
CSS = f"""
.{WEBCAM_CLASS} video {{ transform: scaleX(-1); }}
"""

INSECURE_HTML = """<div class="insecure-note" role="note" hidden>
<strong>⚠️ The webcam cannot start on this page.</strong> Browsers give the camera only to secure pages:
<code>https://…</code> links, or <code>http://localhost</code> on the computer running the lab. This page is
plain <code>http://</code> on a network address. Your teacher can start the lab with <code>--share</code>
(an https link), or with <code>--ssl-certfile cert.pem --ssl-keyfile key.pem</code> and give out the
<code>https://</code> address. Uploading and drawing work as they are.
</div>"""
INSECURE_CSS = """
.insecure-note { padding: 0.7em 0.9em; border: 2px solid #b45309; border-radius: 8px; background: #fffbeb;
  color: #451a03; line-height: 1.45; }
.insecure-note code { color: #451a03; background: #fef3c7; }
"""
# Shown by the browser itself: only it knows whether the page is a secure context. On a secure page
# the note's whole block goes, leaving no gap above the webcam.
INSECURE_JS = """
if (!window.isSecureContext) element.querySelector('.insecure-note').hidden = false;
else { const block = element.closest('.block'); if (block) block.style.display = 'none'; }
"""


def webcam(**kwargs) -> gr.Image:
    """A streaming webcam gr.Image whose frames reach the server the right way round."""
    classes = kwargs.pop("elem_classes", None) or []
    return gr.Image(sources=["webcam"], streaming=True, type="numpy",
                    webcam_options=gr.WebcamOptions(mirror=False),
                    elem_classes=[*([classes] if isinstance(classes, str) else classes), WEBCAM_CLASS], **kwargs)


def insecure_note(elem_id: str) -> gr.HTML:
    """A note, hidden on secure pages, that the webcam needs https or localhost."""
    return gr.HTML(INSECURE_HTML, css_template=INSECURE_CSS, js_on_load=INSECURE_JS, elem_id=elem_id)
