"""Capture tab: name classes, hold a button to record webcam frames into each, then train on them.

Teachable-Machine style. The frames live in a lab.captures.CaptureStore keyed by the browser's
client id, so they are the student's own and a reload finds them again; "Use these to train"
saves them as one of the student's datasets and selects it in the Train and Data tabs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import gradio as gr

from lab import datasets
from lab.captures import MIN_FRAMES_TO_TRAIN, CaptureError, CaptureStore
from lab.hparams import HParams
from lab.images import ImageError

from components.services import Services, dataset_choices, ensure_client
from components.webcam import insecure_note, webcam

CAPTURE_EVERY = 0.2  # seconds between webcam frames sent while the camera streams (the store keeps ≤ 10/s)
CAPTURE_LIMIT = 600  # a forgotten webcam stops streaming after ten minutes (holding the button restarts it)
THUMBNAILS = 60  # newest frames shown per class: a full class (300) would make every update slow

HOLD_HTML = '<button type="button" class="hold-btn" aria-pressed="false">🔴 Hold to record</button>'
HOLD_CSS = """
.hold-btn { width: 100%; padding: 0.9em; font-size: 1.1em; font-weight: 600; border-radius: 10px;
  border: 2px solid #dc2626; background: #fef2f2; color: #991b1b; cursor: pointer;
  touch-action: none; user-select: none; -webkit-user-select: none; -webkit-touch-callout: none; }
.hold-btn.recording { background: #dc2626; color: white; }
"""
# Record while the pointer (mouse, finger, pen) or Space/Enter is held; a quick tap latches recording
# on until the next tap, so a click (or a switch device) works too. Pressing also starts the webcam's
# stream when the camera is on but its own Record button was not pressed.
HOLD_JS = """
const btn = element.querySelector('.hold-btn');
const IDLE = '🔴 Hold to record', HELD = '⏺ Recording… let go to stop';
const LATCHED = '⏺ Recording… press again to stop';
const TAP_MS = 350;
let on = false, down = false, wasOn = false, downAt = 0;
function show(label) {
  btn.textContent = label;
  btn.classList.toggle('recording', on);
  btn.setAttribute('aria-pressed', String(on));
}
function startStream() {
  const rec = document.querySelector('#capture-webcam button[aria-label="capture photo"]');
  if (rec && /record/i.test(rec.textContent)) rec.click();
}
function press() {
  if (down) return;
  down = true; wasOn = on; downAt = Date.now();
  if (!on) { on = true; startStream(); show(HELD); trigger('press'); }
}
function release() {
  if (!down) return;
  down = false;
  if (wasOn || Date.now() - downAt >= TAP_MS) { on = false; show(IDLE); trigger('release'); }
  else show(LATCHED);
}
btn.addEventListener('pointerdown', e => {
  if (e.button !== 0) return;
  e.preventDefault();
  try { btn.setPointerCapture(e.pointerId); } catch (err) {}
  press();
});
btn.addEventListener('pointerup', release);
btn.addEventListener('pointercancel', release);
btn.addEventListener('lostpointercapture', release);
const isPressKey = e => e.key === ' ' || e.key === 'Enter';
btn.addEventListener('keydown', e => { if (isPressKey(e) && !e.repeat) { e.preventDefault(); press(); } });
btn.addEventListener('keyup', e => { if (isPressKey(e)) { e.preventDefault(); release(); } });
btn.addEventListener('contextmenu', e => e.preventDefault());
"""

HOW_TO = (
    "**Teach a model your own classes with the webcam.** "
    "① Type a class name and press **Add class** (two or more, e.g. *thumbs up* and *thumbs down*). "
    "② Press **Click to Access Webcam** and allow the camera. "
    "③ Pick a class, then **hold 🔴 Hold to record** while you show it (a quick tap starts, the next tap stops). "
    "④ Delete bad frames, then press **Use these to train**. "
    "No webcam? Add picture files to each class instead (under the webcam)."
)
NO_FRAMES = ("⚠️ No frames arrived from the webcam. Press **Click to Access Webcam** and allow the camera "
             "(if you said no before, allow it with the camera icon in the address bar), then hold the button again.")


@dataclass
class CaptureTab:
    class_name: gr.Textbox
    add_button: gr.Button
    class_choice: gr.Radio
    webcam: gr.Image
    hold: gr.HTML
    status: gr.Markdown
    counts: gr.Markdown
    gallery_title: gr.Markdown
    gallery: gr.Gallery
    delete_button: gr.Button
    clear_button: gr.Button
    remove_button: gr.Button
    dataset_name: gr.Textbox
    use_button: gr.Button
    result: gr.Markdown
    files: gr.File  # picture files added to the chosen class (instead of, or besides, the webcam)
    shown: gr.State  # frame ids in the gallery, in its order (a gallery index -> a frame id)
    selected: gr.State  # the frame id picked in the gallery, or None


def create_capture_tab() -> CaptureTab:
    gr.Markdown(HOW_TO)
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                class_name = gr.Textbox(label="New class", placeholder="e.g. thumbs up", max_length=30, scale=3,
                                        elem_id="capture-class-name")
                add_button = gr.Button("➕ Add class", scale=1, elem_id="capture-add")
            class_choice = gr.Radio([], label="Record into", elem_id="capture-class",
                                    info="The class that holding the button records into.")
            insecure_note("capture-webcam-insecure")
            # frames reach the store the right way round; only the preview is mirrored (components/webcam.py)
            cam = webcam(label="Webcam", elem_id="capture-webcam", height=300)
            hold = gr.HTML(HOLD_HTML, css_template=HOLD_CSS, js_on_load=HOLD_JS, elem_id="capture-hold")
            status = gr.Markdown("Add two or more classes to start.", elem_id="capture-status")
            files = gr.File(label="…or add picture files to the chosen class", file_count="multiple",
                            file_types=["image"], type="filepath", elem_id="capture-files", height=120)
        with gr.Column(scale=2):
            counts = gr.Markdown(counts_table({}), elem_id="capture-counts")
            # The gallery's own label floats over its first row of thumbnails: the title goes above it.
            gallery_title = gr.Markdown("**Frames of the chosen class**", elem_id="capture-gallery-title")
            # Hidden while empty: an empty gr.Gallery is a <div aria-label="Empty value">, which ARIA forbids.
            gallery = gr.Gallery(show_label=False, columns=4, height=280, allow_preview=False, visible=False,
                                 elem_id="capture-gallery", format="png")
            with gr.Row():
                delete_button = gr.Button("🗑 Delete selected", size="sm", min_width=90, elem_id="capture-delete")
                clear_button = gr.Button("Clear class", size="sm", min_width=90, elem_id="capture-clear")
                remove_button = gr.Button("✖ Remove class", size="sm", variant="stop", min_width=90,
                                          elem_id="capture-remove")
            with gr.Row():
                dataset_name = gr.Textbox("my webcam", label="Dataset name", max_length=40, scale=2)
                use_button = gr.Button("Use these to train", variant="primary", scale=2, elem_id="capture-use")
            result = gr.Markdown(elem_id="capture-result")
    return CaptureTab(class_name, add_button, class_choice, cam, hold, status, counts, gallery_title, gallery,
                      delete_button,
                      clear_button, remove_button, dataset_name, use_button, result, files, gr.State([]),
                      gr.State(None))


def counts_table(counts: dict[str, int], recording: str | None = None) -> str:
    """A Markdown table, one row per class: its frames and whether it has enough to train.

    Markdown rather than a gr.Dataframe: Gradio 6.24's (Colab's) virtual table kept showing one
    row after a second class was added.
    """
    def ready(name, n):
        if name == recording:
            return "⏺ recording"
        return "✅" if n >= MIN_FRAMES_TO_TRAIN else f"needs {MIN_FRAMES_TO_TRAIN - n} more"

    if not counts:
        return "*No classes yet.*"
    rows = [f"| {_cell(c)} | {n} | {ready(c, n)} |" for c, n in counts.items()]
    return "\n".join(["**Frames per class**", "", "| class | frames | ready? |", "|---|---:|---|", *rows])


def _cell(text: str) -> str:
    # A student's class name, shown as plain text inside a Markdown table cell.
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~-])", r"\\\1", text)


def small_set_hint(counts: dict[str, int]) -> str:
    """A note when few of the captured pictures will train the model (fewer than one default batch)."""
    hp = HParams()
    # as lab.datasets.split holds out images: a fraction per class, at least one
    n_train = sum(n - min(max(round(n * hp.validation_split), 1), n - 1) for n in counts.values())
    if n_train >= hp.batch_size:
        return ""
    return (f"\n\nℹ️ Only {n_train} of these pictures train the model (the rest measure its accuracy), so each "
            "epoch is a single step. More frames per class usually make a better model.")


def wire_capture_tab(tab: CaptureTab, services: Services, session: gr.BrowserState, captures: CaptureStore,
                     on_dataset: list, demo: gr.Blocks) -> None:
    """Connect the Capture tab.

    Args:
        demo: the app's Blocks, whose page-load event restores a student's captures after a reload.
        captures: the store of every student's captures (shared, keyed by client id).
        on_dataset: dataset dropdowns (the Train tab's, the Data tab's) set to the saved dataset
            when the student presses "Use these to train".
    """

    def client_of(state):
        """({session: new state} or {}, client id): the session is written back only when the id is new,
        so a capture never overwrites the job id another tab has just stored."""
        fresh = ensure_client(state)
        new = not (isinstance(state, dict) and state.get("client") == fresh["client"])
        return ({session: fresh} if new else {}), fresh["client"]

    def view(client, name) -> dict:
        """Class choices, counts, gallery title and thumbnails, shown ids and selection for `name`."""
        classes = captures.classes(client)
        name = name if name in classes else (classes[0] if classes else None)
        counts = captures.counts(client)
        frames = captures.frames(client, name, newest=THUMBNAILS) if name else []
        n = counts.get(name, 0)
        title = "**Frames of the chosen class**"
        if name:
            title = f"**“{name}”**: {n} frame{'s' * (n != 1)}"
            title += f" (the newest {len(frames)} shown)" if n > len(frames) else ""
            title += " · click one to select it" if frames else ""
        return {tab.class_choice: gr.Radio(choices=classes, value=name),
                tab.counts: counts_table(counts, captures.recording(client)), tab.gallery_title: title,
                tab.gallery: gr.Gallery(value=[(f, f"#{i}") for i, f in frames], selected_index=None,
                                        visible=bool(frames)),
                tab.shown: [i for i, _ in frames], tab.selected: None}

    view_outputs = [tab.class_choice, tab.counts, tab.gallery_title, tab.gallery, tab.shown, tab.selected]

    def on_load(state):
        client = state.get("client") if isinstance(state, dict) else None
        if not client:  # the page's first visit: the Train tab's load makes the id, not this one
            return gr.skip()
        captures.stop(client)  # a page that went away mid-hold never sent its release
        classes = captures.classes(client)
        msg = f"Your {len(classes)} classes are still here." if classes else "Add two or more classes to start."
        return {**view(client, None), tab.status: msg}

    def add_class(state, name):
        update, client = client_of(state)
        try:
            name = captures.add_class(client, name)
        except CaptureError as e:
            return {**update, tab.status: f"⚠️ {e}"}
        hint = " Add one more class." if len(captures.classes(client)) < 2 else " Hold the button to record into it."
        return {**update, tab.class_name: "", **view(client, name), tab.status: f"Added “{name}”.{hint}"}

    def pick(state, name):
        _, client = client_of(state)
        return view(client, name)

    def press(state, name):
        update, client = client_of(state)
        try:
            captures.start(client, name)
        except CaptureError as e:
            return {**update, tab.status: f"⚠️ {e}"}
        return {**update, tab.status: f"⏺ Recording into **{name}**… (the count grows while frames arrive)",
                tab.counts: counts_table(captures.counts(client), name)}

    def release(state, name):
        _, client = client_of(state)
        was, n, full = captures.stop(client)
        if was is None and not full:
            return view(client, name)
        if n == 0:
            msg = NO_FRAMES
        else:
            msg = f"Recorded {n} frame{'s' * (n != 1)} into **{was or name}**."
            if full:
                msg += f" ⚠️ The class is full ({captures.max_frames} frames): delete some to record more."
        return {tab.status: msg, **view(client, was or name)}

    def on_frame(state, frame):
        client = state.get("client") if isinstance(state, dict) else None
        if frame is None or not client:
            return gr.skip()
        try:
            kept = captures.add_frame(client, frame)
        except ImageError:
            return gr.skip()  # one bad frame from the camera: the next one will do
        return counts_table(captures.counts(client), captures.recording(client)) if kept else gr.skip()

    def add_files(state, name, paths):
        update, client = client_of(state)
        if not paths:
            return update or gr.skip()  # (an empty dict is not "no change" to Gradio)
        try:
            added, skipped, why = captures.add_pictures(client, name, paths)
        except CaptureError as e:
            return {**update, tab.status: f"⚠️ {e}", tab.files: None}
        msg = f"Added {added} picture{'s' * (added != 1)} to **{name}**."
        if skipped:
            msg += f" ⚠️ Skipped {skipped}: {why}"
        return {**update, tab.status: msg, **view(client, name), tab.files: None}

    def select(shown, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(shown):
            return {tab.selected: None}
        return {tab.selected: shown[index],
                tab.status: f"Frame #{shown[index]} selected: press **🗑 Delete selected** to remove it."}

    def delete(state, name, selected):
        _, client = client_of(state)
        if selected is None:
            return {tab.status: "Click a frame in the gallery first, then press Delete selected."}
        try:
            n = captures.delete_frames(client, name, [selected])
        except CaptureError as e:
            return {tab.status: f"⚠️ {e}"}
        return {tab.status: "Deleted 1 frame." if n else "That frame was already gone.", **view(client, name)}

    def clear(state, name):
        _, client = client_of(state)
        try:
            n = captures.clear_class(client, name)
        except CaptureError as e:
            return {tab.status: f"⚠️ {e}"}
        return {tab.status: f"Deleted all {n} frames of “{name}”.", **view(client, name)}

    def remove(state, name):
        _, client = client_of(state)
        try:
            captures.remove_class(client, name)
        except CaptureError as e:
            return {tab.status: f"⚠️ {e}"}
        return {tab.status: f"Removed the class “{name}”.", **view(client, None)}

    def use(request: gr.Request, state, title):
        update, client = client_of(state)
        try:
            services.admit(client, request)  # a new dataset costs disk: a flood of made-up students is refused
            info = captures.to_dataset(services.datasets, client, title or "webcam")
        except (CaptureError, datasets.DatasetError) as e:
            return {**update, tab.result: f"⚠️ {e}"}
        except gr.Error as e:
            return {**update, tab.result: f"⚠️ {e.message}"}
        choices = dataset_choices(services, client)
        msg = (f"✅ Saved **{info.title()}** as `{info.dataset_id}`. Switch to the **Train** tab: it is selected "
               "as the dataset there. Press **Train**." + small_set_hint(info.counts))
        if note := services.datasets.storage_note(info.dataset_id):  # the class's storage was full
            msg += f" ⚠️ {note}"
        return {**update, tab.result: msg,
                **{dropdown: gr.Dropdown(choices=choices, value=info.dataset_id) for dropdown in on_dataset}}

    quick = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
    tab.add_button.click(add_class, [session, tab.class_name], [session, tab.class_name, *view_outputs, tab.status],
                         api_visibility="private")
    tab.class_name.submit(add_class, [session, tab.class_name], [session, tab.class_name, *view_outputs, tab.status],
                          api_visibility="private")
    tab.class_choice.input(pick, [session, tab.class_choice], view_outputs, **quick)
    # Every press and release must run, however quickly a student taps ("once" drops a press that comes
    # while the last one is still pending), and at once: no concurrency limit.
    tab.hold.press(press, [session, tab.class_choice], [session, tab.status, tab.counts], trigger_mode="multiple",
                   **quick)
    tab.hold.release(release, [session, tab.class_choice], [tab.status, *view_outputs], trigger_mode="multiple",
                     **quick)
    # Default trigger mode: a stream is one long event (see try_tab.py on "always_last").
    tab.webcam.stream(on_frame, [session, tab.webcam], tab.counts, stream_every=CAPTURE_EVERY,
                      time_limit=CAPTURE_LIMIT, **quick)
    tab.gallery.select(select, tab.shown, [tab.selected, tab.status], **quick)
    tab.files.upload(add_files, [session, tab.class_choice, tab.files], [session, tab.status, *view_outputs, tab.files],
                     api_visibility="private", concurrency_limit=2)
    tab.delete_button.click(delete, [session, tab.class_choice, tab.selected], [tab.status, *view_outputs],
                            api_visibility="private")
    tab.clear_button.click(clear, [session, tab.class_choice], [tab.status, *view_outputs], api_visibility="private")
    tab.remove_button.click(remove, [session, tab.class_choice], [tab.status, *view_outputs], api_visibility="private")
    tab.use_button.click(use, [session, tab.dataset_name], [session, tab.result, *on_dataset], api_visibility="private")
    # A reload finds the captures again.
    demo.load(on_load, session, [*view_outputs, tab.status], api_visibility="private")
