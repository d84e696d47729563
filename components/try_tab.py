"""Try tab: pick a run, then classify an upload, a live webcam stream or a drawing."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from lab import inference
from lab.images import ImageError, read_image
from lab.runs import RunNotFound

from components.services import Services, ensure_client

WEBCAM_EVERY = 0.4  # seconds between webcam frames sent for prediction
WEBCAM_LIMIT = 600  # a forgotten webcam tab stops streaming after ten minutes


@dataclass
class TryTab:
    run_dropdown: gr.Dropdown
    refresh_button: gr.Button
    upload: gr.File
    upload_preview: gr.Image
    webcam: gr.Image
    sketch: gr.Sketchpad
    label: gr.Label
    timing: gr.Markdown
    view: gr.Image


def create_try_tab() -> TryTab:
    with gr.Row():
        run_dropdown = gr.Dropdown(label="Trained run", choices=[], elem_id="run-dropdown", scale=4,
                                   info="Your runs, newest first. Train one in the Train tab.")
        refresh_button = gr.Button("↻ Refresh", scale=1, size="sm")
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Tabs():
                with gr.Tab("Upload"):
                    upload = gr.File(label="Upload a photo or scan", file_types=["image"], type="filepath",
                                     elem_id="try-upload")
                    upload_preview = gr.Image(label="Your image", interactive=False, height=220)
                with gr.Tab("Webcam"):
                    webcam = gr.Image(label="Webcam (predictions keep coming while it runs)", sources=["webcam"],
                                      streaming=True, type="numpy", elem_id="try-webcam")
                with gr.Tab("Draw"):
                    # Gradio 6 starts the pad with no tool selected ("select the draw tool to start"): say so.
                    sketch = gr.Sketchpad(label="Draw (a digit, or whatever your classes are): pick the brush (left) first, then use thick strokes",
                                          type="numpy", canvas_size=(280, 280), elem_id="try-sketch",
                                          brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"))
        with gr.Column(scale=2):
            label = gr.Label(label="Prediction", num_top_classes=3, elem_id="prediction-label")
            timing = gr.Markdown("", elem_id="prediction-time")
            view = gr.Image(label="What the model sees (after preprocessing)", interactive=False, height=220)
    return TryTab(run_dropdown, refresh_button, upload, upload_preview, webcam, sketch, label, timing, view)


def run_choices(services: Services, session) -> gr.Dropdown:
    """A dropdown update with the student's runs, the newest selected."""
    runs = services.runs.list(ensure_client(session)["client"])
    choices = [(r.title(), r.run_id) for r in runs]
    return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)


def wire_try_tab(tab: TryTab, services: Services, session: gr.BrowserState) -> None:
    def classify(run_id, source):
        if source is None:
            return gr.skip(), gr.skip(), gr.skip()
        if not run_id:
            return None, "⚠️ No trained run yet: train one in the **Train** tab first.", None
        try:
            pred = inference.predict(services.runs.load(run_id), source)
        except (ImageError, RunNotFound) as e:
            return None, f"⚠️ {e}", None
        return pred.confidences, f"**{pred.label}** in {pred.ms:.1f} ms", pred.view

    def from_upload(run_id, path):
        if path is None:
            return None, None, "", None
        try:
            preview = read_image(path)
        except ImageError as e:
            return None, None, f"⚠️ {e}", None
        return (preview, *classify(run_id, preview))

    def from_sketch(run_id, editor):
        composite = editor.get("composite") if isinstance(editor, dict) else None
        if composite is None or composite.size == 0 or (composite.ndim == 3 and composite.shape[-1] == 4 and not composite[..., 3].any()):
            return gr.skip(), "Draw something on the pad.", gr.skip()
        return classify(run_id, composite)

    outputs = [tab.label, tab.timing, tab.view]
    fast = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
    tab.refresh_button.click(lambda s: run_choices(services, s), session, tab.run_dropdown, api_visibility="private")
    tab.upload.change(from_upload, [tab.run_dropdown, tab.upload], [tab.upload_preview, *outputs], **fast)
    # No trigger_mode="always_last" here: a stream is one long-lived event, and with it Gradio 6 sends
    # only the first frame (the event counts as pending until time_limit). The default ("multiple") streams.
    tab.webcam.stream(classify, [tab.run_dropdown, tab.webcam], outputs, stream_every=WEBCAM_EVERY,
                      time_limit=WEBCAM_LIMIT, **fast)
    tab.sketch.change(from_sketch, [tab.run_dropdown, tab.sketch], outputs, trigger_mode="always_last", **fast)
