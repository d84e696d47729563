"""Try tab: pick a run, then classify an upload, a live webcam stream or a drawing, and see where the
model looks (lab.explain: a heatmap over what the model sees, with a switch to turn it off)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from lab import compare, explain, inference
from lab.images import ImageError, read_image
from lab.runs import RunNotFound

from components.pictures import picture_box, picture_html
from components.services import PREDICT_LIMIT, PREDICT_POOL, Services, ensure_client
from components.webcam import insecure_note, webcam

WEBCAM_EVERY = 0.4  # seconds between webcam frames sent for prediction
WEBCAM_POOL_LIMIT = 4  # webcam frames predicted at once for the whole class
WEBCAM_LIMIT = 600  # a forgotten webcam tab stops streaming after ten minutes
EMPTY_PAD = "Draw something on the pad."
WEBCAM_WAITING = "Press **Click to Access Webcam**, then **Record**: predictions keep coming while it runs."
DRAW_HINT = ('<p class="draw-hint">Draw with the mouse, a finger or a pen: big, thick strokes. '
             'The bin at the top right clears the pad.</p>')
DRAW_HINT_CSS = ".draw-hint { margin: 0.3em 0 0; }"
# Gradio's pad starts with no tool selected ("select the draw tool to start") and its Clear drops the
# tool again; it has no default-tool option. Whenever no tool (brush, eraser, pan) is selected, this
# picks the brush, so a student draws, clears and draws again without hunting for it.
DRAW_JS = """
const TOOLS = ['Brush', 'Erase', 'Pan'];
let scope = element;
while (scope && !scope.querySelector('#try-sketch')) scope = scope.parentElement;
function keepBrush() {
  const pad = document.querySelector('#try-sketch');
  const brush = pad && pad.querySelector('button[aria-label="Brush"]');
  if (!brush) return;
  const chosen = TOOLS.some(t => pad.querySelector(`button[aria-label="${t}"]`)?.classList.contains('highlight'));
  if (!chosen) brush.click();
}
new MutationObserver(keepBrush).observe(scope || document.body, {subtree: true, childList: true,
                                                                 attributes: true, attributeFilter: ['class']});
keepBrush();
"""
UPLOAD_CAPTION = "Your image"
VIEW_CAPTION = "What the model sees (after preprocessing)"
HEAT_CAPTION = "Where the model looks"
HEAT_SWITCH = "Show where the model looks (heatmap)"
HEAT_INFO = "Yellow: the places that pushed the model most towards its answer. Turn off to predict a little faster."
METHOD_WORDS = {explain.GRAD_CAM: "Grad-CAM", explain.SALIENCY: "input gradients"}
PICTURE_HEIGHT = 220  # CSS pixels
WAITING = "The prediction shows here: upload a photo, start the webcam or draw."


def _shown(confidences: dict | None) -> gr.Label:
    """The prediction's update; no prediction hides it (an empty gr.Label's placeholder breaks an ARIA rule)."""
    return gr.Label(value=confidences, visible=confidences is not None)


def _view_html(view) -> str:
    return picture_html(view, "The picture as the model receives it: resized, and in grey or colour as it was "
                        "trained.", VIEW_CAPTION, height=PICTURE_HEIGHT, pixelated=True)


def heat_html(ex: explain.Explanation | None) -> str:
    """The heatmap picture with alt text ("" for none)."""
    if ex is None:
        return ""
    label = ex.prediction.label
    alt = (f"Where the model looks when it says “{label}”: what the model sees, with the places that pushed it "
           "towards that answer coloured, from blue (a little) to yellow (most).")
    return picture_html(ex.overlay, alt, f"{HEAT_CAPTION} ({METHOD_WORDS.get(ex.method, ex.method)})",
                        height=PICTURE_HEIGHT)


@dataclass
class TryTab:
    run_dropdown: gr.Dropdown
    refresh_button: gr.Button
    upload: gr.File
    upload_preview: gr.HTML  # pictures are captioned <img>s with alt text (components/pictures.py)
    webcam: gr.Image
    sketch: gr.Sketchpad
    label: gr.Label  # hidden until there is a prediction
    timing: gr.Markdown
    view: gr.HTML
    heat: gr.HTML  # the heatmap over what the model sees; "" when switched off
    heat_switch: gr.Checkbox
    # Upload, Webcam and Draw share one prediction panel: it shows only the input in front of the student.
    upload_tab: gr.Tab
    webcam_tab: gr.Tab
    draw_tab: gr.Tab
    front: gr.State  # which input's tab is open: "upload", "webcam" or "draw"


def create_try_tab() -> TryTab:
    with gr.Row():
        run_dropdown = gr.Dropdown(label="Trained run", choices=[], elem_id="run-dropdown", scale=4,
                                   info="Your runs, newest first. Train one in the Train tab.")
        refresh_button = gr.Button("↻ Refresh", scale=1, size="sm")
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Tabs():
                with gr.Tab("Upload") as upload_tab:
                    upload = gr.File(label="Upload a photo or scan", file_types=["image"], type="filepath",
                                     elem_id="try-upload")
                    upload_preview = picture_box(UPLOAD_CAPTION)
                with gr.Tab("Webcam") as webcam_tab:
                    insecure_note("try-webcam-insecure")
                    cam = webcam(label="Webcam (predictions keep coming while it runs)", elem_id="try-webcam")
                with gr.Tab("Draw") as draw_tab:
                    # A short label: the pad's toolbar covers the right half of the label row.
                    sketch = gr.Sketchpad(label="Draw", type="numpy", canvas_size=(280, 280), elem_id="try-sketch",
                                          brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"))
                    gr.HTML(DRAW_HINT, css_template=DRAW_HINT_CSS, js_on_load=DRAW_JS, elem_id="try-draw-hint")
        with gr.Column(scale=2):
            label = gr.Label(label="Prediction", num_top_classes=3, elem_id="prediction-label", visible=False)
            timing = gr.Markdown(WAITING, elem_id="prediction-time")
            heat_switch = gr.Checkbox(value=True, label=HEAT_SWITCH, info=HEAT_INFO, elem_id="try-heat-switch")
            with gr.Row():
                view = picture_box(VIEW_CAPTION)
                heat = picture_box(HEAT_CAPTION, elem_id="try-heat")
    return TryTab(run_dropdown, refresh_button, upload, upload_preview, cam, sketch, label, timing, view, heat,
                  heat_switch, upload_tab, webcam_tab, draw_tab, gr.State("upload"))


def run_choices(services: Services, session) -> gr.Dropdown:
    """A dropdown update with the student's runs, the newest selected, named as the runs board names
    them (`small_cnn · lr 0.03 · 96.1%`, lab.compare)."""
    runs = services.runs.list(ensure_client(session)["client"])
    names = compare.unique_names(runs)
    choices = [(names[r.run_id], r.run_id) for r in runs]
    return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)


def wire_try_tab(tab: TryTab, services: Services, session: gr.BrowserState) -> None:
    """Connect the run picker and the three inputs; every handler answers {component: update}."""

    def panel(confidences, timing: str, view: str = "", heat: str = "") -> dict:
        """The prediction panel: top classes (hidden when None), the time line, what the model saw, where it looked."""
        return {tab.label: _shown(confidences), tab.timing: timing, tab.view: view, tab.heat: heat}

    def classify(run_id, source, state, heat_on=True):
        if source is None:
            return gr.skip()
        if not run_id:
            return panel(None, "⚠️ No trained run yet: train one in the **Train** tab first.")
        try:
            # the run must be this student's own: the dropdown's value comes from the browser
            run = services.runs.load(run_id, ensure_client(state)["client"])
            ex = explain.explain(run, source) if heat_on else None
            pred = ex.prediction if ex else inference.predict(run, source)
        except (ImageError, RunNotFound, explain.ExplainError) as e:
            return panel(None, f"⚠️ {e}")
        return panel(pred.confidences, f"**{pred.label}** in {pred.ms:.1f} ms", _view_html(pred.view), heat_html(ex))

    def from_upload(run_id, path, state, heat_on=True):
        if path is None:
            return {tab.upload_preview: "", **panel(None, WAITING)}
        try:
            preview = read_image(path)
        except ImageError as e:
            return {tab.upload_preview: "", **panel(None, f"⚠️ {e}")}
        shown = picture_html(preview, "The picture you uploaded.", UPLOAD_CAPTION, height=PICTURE_HEIGHT)
        return {tab.upload_preview: shown, **classify(run_id, preview, state, heat_on)}

    def from_sketch(run_id, editor, state, heat_on=True):
        composite = editor.get("composite") if isinstance(editor, dict) else None
        if composite is None or composite.size == 0 or (composite.ndim == 3 and composite.shape[-1] == 4 and not composite[..., 3].any()):
            return panel(None, EMPTY_PAD)  # a cleared pad: its last prediction goes too
        return classify(run_id, composite, state, heat_on)

    # An input answers only while its tab is open (a webcam can stream on behind the Draw tab), and
    # opening a tab shows that input's own prediction: the pad's, the upload's, or none yet.
    def in_front(name, handler):
        return lambda front, *args: handler(*args) if front == name else gr.skip()

    def show_upload(run_id, path, state, heat_on):
        shown = from_upload(run_id, path, state, heat_on)
        shown.pop(tab.upload_preview)
        return {tab.front: "upload", **shown}

    def show_webcam():
        return {tab.front: "webcam", **panel(None, WEBCAM_WAITING)}

    def show_draw(run_id, editor, state, heat_on):
        return {tab.front: "draw", **from_sketch(run_id, editor, state, heat_on)}

    def switch_heat(front, run_id, path, editor, state, heat_on):
        """The switch redoes the input in front (the webcam's next frame follows it by itself)."""
        if front == "upload":
            shown = from_upload(run_id, path, state, heat_on)
            shown.pop(tab.upload_preview)
            return shown
        if front == "draw":
            return from_sketch(run_id, editor, state, heat_on)
        return gr.skip() if heat_on else {tab.heat: ""}

    outputs = [tab.label, tab.timing, tab.view, tab.heat]
    # Every prediction (uploads, webcam frames, drawings and /predict) shares one bounded pool: decoding
    # pictures is CPU and memory work, and a class must not be able to pile it up.
    fast = dict(api_visibility="private", concurrency_id=PREDICT_POOL, concurrency_limit=PREDICT_LIMIT,
                show_progress="hidden")
    tab.refresh_button.click(lambda s: run_choices(services, s), session, tab.run_dropdown, api_visibility="private")
    tab.upload.change(from_upload, [tab.run_dropdown, tab.upload, session, tab.heat_switch], [tab.upload_preview, *outputs],
                      **fast)
    # No trigger_mode="always_last" here: a stream is one long-lived event, and with it Gradio 6 sends
    # only the first frame (the event counts as pending until time_limit). The default ("multiple") streams.
    # Webcam frames are small and frequent (a class streams at once): a wider pool of their own.
    tab.webcam.stream(in_front("webcam", classify), [tab.front, tab.run_dropdown, tab.webcam, session, tab.heat_switch],
                      outputs,
                      stream_every=WEBCAM_EVERY, time_limit=WEBCAM_LIMIT,
                      **{**fast, "concurrency_id": "webcam", "concurrency_limit": WEBCAM_POOL_LIMIT})
    tab.sketch.change(in_front("draw", from_sketch), [tab.front, tab.run_dropdown, tab.sketch, session, tab.heat_switch],
                      outputs,
                      trigger_mode="always_last", **fast)
    tab.upload_tab.select(show_upload, [tab.run_dropdown, tab.upload, session, tab.heat_switch], [tab.front, *outputs],
                          **fast)
    tab.webcam_tab.select(show_webcam, None, [tab.front, *outputs], **fast)
    tab.draw_tab.select(show_draw, [tab.run_dropdown, tab.sketch, session, tab.heat_switch], [tab.front, *outputs], **fast)
    tab.heat_switch.change(switch_heat, [tab.front, tab.run_dropdown, tab.upload, tab.sketch, session, tab.heat_switch],
                           outputs, **fast)
