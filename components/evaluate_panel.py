"""The evaluation panel under the Train tab's charts: where a run goes wrong, and the /evaluate answer.

A run picker (the run a job just saved, or any earlier run of the student's), the accuracy with
plain-words verdicts, the confusion matrix as a heatmap with counts, per-class scores as a Markdown
table (6.24's gr.Dataframe breaks ARIA rules), and the mistakes themselves as pictures with alt text.
`gr.Plot` has no click event, so a cell is chosen with two dropdowns (true class, predicted class):
its mistakes show most confident first, each with the class it was taken for and how sure the model was.
Each mistake is a button: pressing it shows where the model looked when it said the wrong class (lab.explain).
"""

from __future__ import annotations

import base64
import html
import io
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.data_classes import FileData
from PIL import Image

from lab import charts, evaluation, explain
from lab.datasets import DatasetError
from lab.evaluation import Evaluation, EvaluationError
from lab.images import enlarge
from lab.runs import RunNotFound

from components.services import PREDICT_LIMIT, PREDICT_POOL, Services, ensure_client
from components.pictures import picture_html
from components.try_tab import METHOD_WORDS, PICTURE_HEIGHT, run_choices

ANY = "any"  # a cell dropdown's "any class"
THUMB = 96  # CSS pixels a mistake's picture is drawn (small pictures enlarged with hard edges)
SCORES_HELP = ("*Precision*: when the model says this class, how often it is right. *Recall*: of this class's "
               "pictures, how many it recognises. *Pictures*: validation pictures of the class.")
GRID_CSS = ("display: flex; flex-wrap: wrap; gap: 10px; margin: 0; padding: 0; list-style: none;")
CELL_CSS = "margin: 0; width: 112px; text-align: center; font-size: 0.85em; line-height: 1.3;"
IMG_CSS = f"width: {THUMB}px; height: {THUMB}px; object-fit: contain; image-rendering: pixelated; background: #000;"
BUTTON_CSS = ("all: unset; cursor: pointer; display: block; border-radius: 6px; padding: 2px; "
              "outline-offset: 2px;")
# A click on a mistake's button says which mistake (its number in the run's kept mistakes) to the server.
MISTAKES_JS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-mistake]');
  if (button) trigger('click', {mistake: Number(button.dataset.mistake)});
});
"""
MISTAKES_HINT = " Press a picture to see where the model looked."
API_FILES = Path(tempfile.gettempdir()) / "vision-lab-evaluate"  # the /evaluate answer's pictures, briefly
API_FILES_KEEP_S = 600  # Gradio copies them into its own cache as the answer goes out


@dataclass
class EvaluatePanel:
    box: gr.Column  # hidden until the student has a run
    run_picker: gr.Dropdown
    summary: gr.Markdown
    matrix: gr.Plot
    scores: gr.Markdown
    cell_row: gr.Row
    true_pick: gr.Dropdown
    predicted_pick: gr.Dropdown
    cell_note: gr.Markdown
    mistakes: gr.HTML  # captioned pictures with alt text; "" when there are none; each is a button
    why: gr.HTML  # the pressed mistake: its picture and where the model looked ("" until one is pressed)


def create_evaluate_panel() -> EvaluatePanel:
    with gr.Column(visible=False, elem_id="evaluation") as box:
        gr.Markdown("### Where the model goes wrong\nEvery validation picture of the run, through the weights it "
                    "kept: which classes it mixes up, and the pictures it got wrong.")
        run_picker = gr.Dropdown(label="Run to evaluate", choices=[], elem_id="evaluation-run",
                                 info="The run a job just saved, or any earlier one of yours.")
        summary = gr.Markdown(elem_id="evaluation-summary")
        matrix = gr.Plot(elem_id="confusion-plot", show_label=False)
        scores = gr.Markdown(elem_id="class-scores")
        with gr.Row() as cell_row:
            true_pick = gr.Dropdown(label="True class", choices=[(f"{ANY} class", ANY)], value=ANY,
                                    elem_id="cell-true", info="A row of the matrix")
            predicted_pick = gr.Dropdown(label="Taken for", choices=[(f"{ANY} class", ANY)], value=ANY,
                                         elem_id="cell-predicted", info="A column of the matrix")
        cell_note = gr.Markdown(elem_id="cell-note")
        mistakes = gr.HTML("", elem_id="mistakes", padding=False, container=False, js_on_load=MISTAKES_JS)
        why = gr.HTML("", elem_id="mistake-heat", padding=False, container=False)
    return EvaluatePanel(box, run_picker, summary, matrix, scores, cell_row, true_pick, predicted_pick,
                         cell_note, mistakes, why)


# -- what the panel shows ----------------------------------------------------------------------
def summary_markdown(ev: Evaluation) -> str:
    """The accuracy, which weights, the most frequent confusions and the verdicts, in plain words."""
    lines = [f"**Accuracy {ev.accuracy:.1%}** on {ev.total} validation pictures (guessing would score "
             f"{ev.chance:.0%} with {len(ev.classes)} classes)."]
    if ev.weights_note():
        lines.append(f"ℹ️ {ev.weights_note()}")
    confused = [f"“{_md(ev.classes[t])}” taken for “{_md(ev.classes[p])}” ({n} picture{'s' * (n != 1)})"
                for t, p, n in ev.confusions()]
    lines.append("Most often confused: " + "; ".join(confused) + "." if confused else "No mistakes at all.")
    lines += [f"⚠️ {v}" for v in ev.verdicts()]
    return "\n\n".join(lines)


def scores_markdown(ev: Evaluation) -> str:
    """Per-class precision, recall and pictures as a Markdown table (readable with 20 classes)."""
    def pct(v):
        return "—" if v is None else f"{v:.0%}"

    rows = ["| class | precision | recall | pictures |", "|---|---:|---:|---:|"]
    rows += [f"| {_md(name)} | {pct(s.precision)} | {pct(s.recall)} | {s.support} |"
             for name, s in ev.per_class().items()]
    return "\n".join(rows) + "\n\n" + SCORES_HELP


def cell_choices(ev: Evaluation) -> list[tuple[str, str]]:
    return [(f"{ANY} class", ANY)] + [(name, str(i)) for i, name in enumerate(ev.classes)]


def _class(value, ev: Evaluation) -> int | None:
    """A cell dropdown's value as a class number (None: any class, or nonsense from a browser)."""
    try:
        i = int(value)
    except (TypeError, ValueError):
        return None
    return i if 0 <= i < len(ev.classes) else None


def cell_view(ev: Evaluation, true: int | None, predicted: int | None) -> tuple[str, str]:
    """(the note, the pictures' HTML) for one cell of the matrix, a row, a column, or all mistakes."""
    name = {i: f"“{_md(c)}”" for i, c in enumerate(ev.classes)}
    shown = ev.cell(true, predicted)
    wrong = ev.total - int(np.trace(ev.confusion))
    if true is not None and true == predicted:
        n = int(ev.confusion[true, true])
        return (f"{n} picture{'s' * (n != 1)} of {name[true]} recognised correctly: only mistakes are kept, so "
                "choose another class under **Taken for**.", "")
    if true is not None and predicted is not None:
        count, what = int(ev.confusion[true, predicted]), f"of {name[true]} taken for {name[predicted]}"
    elif true is not None:
        count, what = wrong_in(ev, row=true), f"of {name[true]} taken for something else"
    elif predicted is not None:
        count, what = wrong_in(ev, column=predicted), f"wrongly taken for {name[predicted]}"
    else:
        count, what = wrong, "the model got wrong"
    if not count:
        return f"No picture {what}.", ""
    note = f"**{count}** picture{'s' * (count != 1)} {what}"
    if len(shown) < count:
        note += (f"; {len(shown)} shown (a run keeps its {evaluation.MAX_MISTAKES} most telling mistakes: the most "
                 "confident of every cell first)")
    return note + ". Most confident mistakes first." + MISTAKES_HINT, mistakes_html(ev, shown)


def wrong_in(ev: Evaluation, row: int | None = None, column: int | None = None) -> int:
    c = ev.confusion
    if row is not None:
        return int(c[row].sum() - c[row, row])
    return int(c[:, column].sum() - c[column, column])


def mistakes_html(ev: Evaluation, which: list[int]) -> str:
    """The chosen mistakes as a list of captioned pictures with alt text (no markup when none)."""
    if not which:
        return ""
    items = []
    for i in which:
        m = ev.mistakes[i]
        true, said = ev.classes[m.true], ev.classes[m.predicted]
        alt = f"A picture of “{true}” that the model took for “{said}”, {m.confidence:.0%} sure."
        caption = f"said {html.escape(said)} · {m.confidence:.0%}<br><small>true: {html.escape(true)}</small>"
        items.append(f'<li><button type="button" data-mistake="{i}" style="{BUTTON_CSS}" '
                     f'aria-label="{html.escape(alt + " Show where the model looked.", quote=True)}">'
                     f'<figure style="{CELL_CSS}"><img src="{_data_url(ev.images[i])}" '
                     f'alt="{html.escape(alt, quote=True)}" style="{IMG_CSS}"><figcaption>{caption}</figcaption>'
                     "</figure></button></li>")
    return f'<ul style="{GRID_CSS}" aria-label="Mistakes, most confident first">{"".join(items)}</ul>'


def why_html(ev: Evaluation, i: int, ex: explain.Explanation) -> str:
    """A mistake next to its heatmap: where the model looked when it took it for the wrong class."""
    m = ev.mistakes[i]
    true, said = html.escape(ev.classes[m.true]), html.escape(ev.classes[m.predicted])
    picture = picture_html(ex.prediction.view, f"The mistake as the model sees it: a picture of “{true}”.",
                           "The picture", height=PICTURE_HEIGHT // 2, pixelated=True)
    heat = picture_html(ex.overlay, f"Where the model looked when it said “{said}” ({m.confidence:.0%} sure): "
                        "the places that pushed it towards that answer coloured, from blue (a little) to yellow (most).",
                        f"Where it looked ({METHOD_WORDS.get(ex.method, ex.method)})", height=PICTURE_HEIGHT // 2)
    return (f'<section aria-label="Why the model said {said}"><p><strong>Why “{said}”?</strong> A picture of '
            f"“{true}” that the model took for “{said}”, {m.confidence:.0%} sure. The heat shows what pushed it "
            'towards “' + said + '”.</p><div style="display: flex; gap: 16px; flex-wrap: wrap;">'
            f"{picture}{heat}</div></section>")


def _data_url(image: np.ndarray) -> str:
    small = enlarge(image, THUMB) if max(image.shape[:2]) < THUMB else np.squeeze(image)
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _md(text: str) -> str:
    """A class name safe in Markdown and in a table cell."""
    return html.escape(str(text)).replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def class_count(services: Services, hp, owner: str) -> int | None:
    """How many classes the dataset of `hp` has (for the chance line); None when it cannot be told."""
    try:
        return services.jobs.catalog.describe(hp.dataset, owner).num_classes
    except DatasetError:
        return None


# -- the /evaluate answer ------------------------------------------------------------------------
def api_answer(ev: Evaluation, run_id: str) -> dict:
    """The /evaluate answer: the figures, and each kept mistake's picture as an image file."""
    answer = {**ev.to_json(), "run_id": run_id}
    folder = _api_folder()
    for i, item in enumerate(answer["mistakes"]):
        path = folder / f"mistake-{i + 1:02d}.png"
        Image.fromarray(np.squeeze(ev.images[i], axis=-1) if ev.images[i].shape[-1] == 1 else ev.images[i]).save(path)
        item["image"] = FileData(path=str(path), orig_name=path.name, mime_type="image/png").model_dump()
    return answer


def api_image(picture: np.ndarray, name: str) -> dict:
    """A picture (uint8) as an image file an API answer carries (FileData), kept briefly in the temp folder."""
    path = _api_folder() / name
    Image.fromarray(picture).save(path)
    return FileData(path=str(path), orig_name=path.name, mime_type="image/png").model_dump()


def _api_folder() -> Path:
    """A fresh folder in the system's temp (where Gradio may read files from), older ones removed."""
    API_FILES.mkdir(parents=True, exist_ok=True)
    for old in API_FILES.iterdir():
        try:
            if time.time() - old.stat().st_mtime > API_FILES_KEEP_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue
    return Path(tempfile.mkdtemp(dir=API_FILES))


# -- wiring ----------------------------------------------------------------------------------------
def wire_evaluate_panel(panel: EvaluatePanel, services: Services, session: gr.BrowserState, new_run,
                        demo: gr.Blocks) -> None:
    """Show the newest run's evaluation on load and whenever a job saves a run (`new_run`, a gr.State
    holding its id, changes); the picker shows any other; the cell dropdowns choose pictures."""

    def hidden() -> dict:
        return {panel.box: gr.Column(visible=False)}

    def shown(summary: str, ev: Evaluation | None) -> dict:
        """Everything below the picker (the figures hidden when there is no evaluation)."""
        on = ev is not None
        note, pictures = cell_view(ev, None, None) if on else ("", "")
        update = {panel.box: gr.Column(visible=True), panel.summary: summary, panel.why: "",
                  panel.matrix: gr.Plot(charts.confusion_figure(ev.classes, ev.confusion) if on else None, visible=on),
                  panel.scores: gr.Markdown(scores_markdown(ev) if on else "", visible=on),
                  panel.cell_row: gr.Row(visible=on), panel.cell_note: note, panel.mistakes: pictures}
        if on:
            choices = cell_choices(ev)
            update[panel.true_pick] = gr.Dropdown(choices=choices, value=ANY)
            update[panel.predicted_pick] = gr.Dropdown(choices=choices, value=ANY)
        return update

    def render(run_id, state):
        if not run_id:
            return hidden()
        owner = ensure_client(state)["client"]
        try:
            ev = evaluation.of_run(services.runs, services.jobs.catalog, run_id, owner)
        except RunNotFound:  # gone (the class's storage was full), or never this student's
            return shown("⚠️ That run is no longer there: choose another.", None)
        except EvaluationError as e:
            return shown(f"⚠️ {str(e)[:1].upper()}{str(e)[1:]}.", None)
        return shown(summary_markdown(ev), ev)

    def choose_cell(run_id, true, predicted, state):
        try:  # read back (render has made it)
            ev = evaluation.of_run(services.runs, services.jobs.catalog, run_id, ensure_client(state)["client"])
        except (RunNotFound, EvaluationError):
            ev = None
        if ev is None:
            return {panel.cell_note: "⚠️ That run is no longer there: choose another.", panel.mistakes: ""}
        note, pictures = cell_view(ev, _class(true, ev), _class(predicted, ev))
        return {panel.cell_note: note, panel.mistakes: pictures, panel.why: ""}

    def explain_mistake(run_id, state, evt: gr.EventData):
        """A pressed mistake: where the model looked (the number comes from the browser: checked)."""
        i = (getattr(evt, "_data", None) or {}).get("mistake")
        owner = ensure_client(state)["client"]
        try:
            ev = services.runs.evaluation(run_id, owner) if run_id else None
            if ev is None or not isinstance(i, int) or not 0 <= i < len(ev.mistakes):
                return gr.skip()
            ex = explain.explain_input(services.runs.load(run_id, owner), ev.images[i])
        except RunNotFound:
            return {panel.why: "<p>⚠️ That run is no longer there: choose another.</p>"}
        except (ValueError, explain.ExplainError) as e:
            return {panel.why: f"<p>⚠️ {html.escape(str(e))}</p>"}
        return {panel.why: why_html(ev, i, ex)}

    outputs = [panel.box, panel.summary, panel.matrix, panel.scores, panel.cell_row, panel.true_pick,
               panel.predicted_pick, panel.cell_note, panel.mistakes, panel.why]
    # A run saved before evaluations were kept is evaluated here, once: at most two at a time.
    panel.run_picker.change(render, [panel.run_picker, session], outputs, api_visibility="private",
                            concurrency_limit=2)
    cell = dict(inputs=[panel.run_picker, panel.true_pick, panel.predicted_pick, session],
                outputs=[panel.cell_note, panel.mistakes, panel.why], api_visibility="private", concurrency_limit=None)
    # .input: only a student's choice (render's resetting both to "any" must not fire them again)
    panel.true_pick.input(choose_cell, **cell)
    panel.predicted_pick.input(choose_cell, **cell)
    # one model call (forward and backward) per press, in the predictions' bounded pool
    panel.mistakes.click(explain_mistake, [panel.run_picker, session], [panel.why], api_visibility="private",
                         concurrency_id=PREDICT_POOL, concurrency_limit=PREDICT_LIMIT, show_progress="hidden")
    new_run.change(lambda run_id, s: {panel.run_picker: run_choices(services, s)} if run_id else gr.skip(),
                   [new_run, session], [panel.run_picker], api_visibility="private")
    demo.load(lambda s: {panel.run_picker: run_choices(services, s)}, session, [panel.run_picker],
              api_visibility="private")
