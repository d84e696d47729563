"""The runs board, under the Train tab's charts: the student's runs newest first, what changed from
the run before each, two or more of them overlaid on one pair of charts, downloading a run's model
(lab.export: .keras, SavedModel, TFLite float or int8, each with its model card), and deleting runs.

Only the caller's runs: every run id that comes back from the browser (ticked, chosen for
deletion) is looked up with the student's owner, and one that is not theirs is skipped as if it
were missing. Handlers answer {component: update}.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from lab import charts, compare
from lab.export import ExportError
from lab.runs import RunNotFound

from components.downloads import EXPORT_LIMIT, EXPORT_POOL, FORMAT_CHOICES, hand_out
from components.services import Services, ensure_client

EMPTY = "<p>No runs yet: press <strong>Train</strong>. Each run you train appears here, newest first.</p>"
COLUMNS = ("Run", "When", "Dataset", "Model", "Changed", "Best val acc", "Training time", "Images/s", "State")
STATE_ICONS = {"done": "✅", "stopped": "⏹️", "diverged": "⚠️"}
MAX_ROWS = 50  # runs the table lists (the charts and the delete menu still offer all of them)
LATEST = 2  # runs ticked after each new run
from components.layout import BOARD_CSS as CSS  # noqa: E402,F401  (lab_app reads it there, before keras is imported)


@dataclass
class RunsBoard:
    table: gr.HTML  # an HTML table (gr.Dataframe breaks ARIA rules in Gradio 6.24)
    picked: gr.CheckboxGroup  # run ids overlaid on the comparison charts
    loss_plot: gr.Plot
    accuracy_plot: gr.Plot
    doomed: gr.Dropdown  # the run the Delete button asks about
    delete_button: gr.Button
    clear_button: gr.Button
    confirm: gr.Column  # "Delete …? This cannot be undone." with Yes and Cancel; hidden until asked
    confirm_text: gr.Markdown
    yes_button: gr.Button
    cancel_button: gr.Button
    note: gr.Markdown  # what the last deletion did; hidden when there is nothing to say
    pending: gr.State  # the run ids the open confirmation would delete
    export_run: gr.Dropdown  # the run to download
    export_format: gr.Dropdown  # lab.export.FORMATS
    export_button: gr.Button
    export_file: gr.File  # the download, once built; hidden until then
    export_note: gr.Markdown  # "preparing…" with the progress bar, or why there is no download


def create_runs_board() -> RunsBoard:
    """The board's components, in the current layout (the Train tab's chart column)."""
    gr.Markdown("### Your runs\nChange one knob, train again, and compare: each run says what changed from "
                "the one before it.", elem_id="runs-heading")
    table = gr.HTML(EMPTY, elem_id="runs-table", container=False, padding=False)
    picked = gr.CheckboxGroup(label="Compare runs", choices=[], elem_id="runs-picked", visible=False,
                              info="Tick two or more: their curves share the charts below, one colour per run.")
    # shown once a run is ticked: a new student sees no empty charts here
    loss_plot = gr.Plot(elem_id="compare-loss-plot", show_label=False, visible=False)
    accuracy_plot = gr.Plot(elem_id="compare-accuracy-plot", show_label=False, visible=False)
    with gr.Group(elem_id="runs-export-group"):
        with gr.Row():
            export_run = gr.Dropdown(label="Download a run", choices=[], elem_id="runs-export-choice", scale=3,
                                     info="Take your model home, with a model card: what it learned from, how good it "
                                          "is, the exact input it expects and Python code that uses it.")
            export_format = gr.Dropdown(label="As", choices=FORMAT_CHOICES, value="keras", elem_id="runs-export-format",
                                        scale=2, info="TFLite runs on phones; int8 on microcontrollers.")
            with gr.Column(scale=1, min_width=190):
                export_button = gr.Button("⬇ Prepare download", elem_id="runs-export", variant="secondary")
        # hidden while empty (Gradio's empty File breaks an ARIA rule); progress shows on the note meanwhile
        export_file = gr.File(label="Your download (a zip: the model, MODEL_CARD.md, classify.py)", interactive=False,
                              elem_id="runs-export-file", height=80, visible=False)
        export_note = gr.Markdown(visible=False, elem_id="runs-export-note")
    with gr.Row():
        doomed = gr.Dropdown(label="Delete a run", choices=[], elem_id="runs-delete-choice", scale=3,
                             info="Choose one, then press Delete: you are asked before anything goes.")
        with gr.Column(scale=1, min_width=190):
            delete_button = gr.Button("🗑 Delete", elem_id="runs-delete")
            clear_button = gr.Button("Delete all my runs", elem_id="runs-clear", variant="stop")
    with gr.Column(visible=False, elem_id="runs-confirm", variant="panel") as confirm:
        confirm_text = gr.Markdown(elem_id="runs-confirm-text")
        with gr.Row():
            yes_button = gr.Button("Yes, delete", variant="stop", elem_id="runs-confirm-yes")
            cancel_button = gr.Button("Cancel", elem_id="runs-confirm-cancel")
    note = gr.Markdown(visible=False, elem_id="runs-note")
    return RunsBoard(table, picked, loss_plot, accuracy_plot, doomed, delete_button, clear_button, confirm,
                     confirm_text, yes_button, cancel_button, note, gr.State([]), export_run, export_format,
                     export_button, export_file, export_note)


def _cell(text: str) -> str:
    """Text in Markdown (the confirmation): a student's dataset name must not become markup."""
    text = str(text).replace("\\", "\\\\").replace("\n", " ")
    for ch in "`*_[]<>#!~|":
        text = text.replace(ch, "\\" + ch)
    return text


def table_html(rows: list[compare.BoardRow]) -> str:
    """The board as an HTML table with column headers, in a region that scrolls sideways on a phone
    (focusable, so a keyboard can scroll it too). Every text is escaped: names are the students'."""
    if not rows:
        return EMPTY
    head = "".join(f'<th scope="col">{html.escape(c)}</th>' for c in COLUMNS)
    body = []
    for r in rows[:MAX_ROWS]:
        state = f"{STATE_ICONS.get(r.state, '')} {r.state}".strip()
        cells = (r.name, r.when, r.dataset, r.model, r.changed, r.best_val_accuracy, r.train_time,
                 r.images_per_second, state)
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    more = f"<p>… and {len(rows) - MAX_ROWS} older runs (tick them below to compare).</p>" if len(rows) > MAX_ROWS else ""
    return (f'<div class="runs-scroll" tabindex="0" role="region" aria-label="Your runs, newest first">'
            f"<table><caption>Your runs, newest first</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>{more}")


def overlay(board: RunsBoard, services: Services, owner: str, run_ids, infos=None) -> dict:
    """The comparison charts' updates for the ticked runs that are the student's (others are skipped),
    oldest first; hidden when none is ticked."""
    infos = infos if infos is not None else services.runs.list(owner)
    wanted = set(run_ids or [])
    chosen = sorted((i for i in infos if i.run_id in wanted), key=lambda i: i.created)
    legends = compare.legend_names(chosen)
    series = []
    for info in chosen:
        try:
            series.append((legends[info.run_id], services.runs.metrics(info.run_id, owner)))
        except RunNotFound:  # deleted a moment ago
            continue
    loss, accuracy = charts.compare_figures(series)
    return {board.loss_plot: gr.Plot(loss, visible=bool(series)),
            board.accuracy_plot: gr.Plot(accuracy, visible=bool(series))}


def board_update(board: RunsBoard, services: Services, session, picked=None, latest: bool = False) -> dict:
    """The whole board for the student: table, tick boxes (the latest two when `latest`, else those of
    `picked` that still exist), comparison charts and the delete menu."""
    owner = ensure_client(session)["client"]
    infos = services.runs.list(owner)
    names = compare.unique_names(infos)
    choices = [(names[i.run_id], i.run_id) for i in infos]
    ids = [i.run_id for i in infos]
    value = ids[:LATEST] if latest else [r for r in (picked or []) if r in ids]
    return {board.table: table_html(compare.board_rows(infos)),
            board.picked: gr.CheckboxGroup(choices=choices, value=value, visible=bool(choices)),
            **overlay(board, services, owner, value, infos),
            board.doomed: gr.Dropdown(choices=choices, value=None),
            # the newest run is the one a student means to take home
            board.export_run: gr.Dropdown(choices=choices, value=ids[0] if ids else None)}


def wire_runs_board(board: RunsBoard, services: Services, session: gr.BrowserState, new_run: gr.State,
                    run_dropdown, run_choices) -> None:
    """Connect the board.

    Args:
        new_run: set to a run's id when a job saves it (the Train tab's): the board refreshes with
            the latest two ticked.
        run_dropdown, run_choices: the Try tab's run picker and its update (session -> gr.Dropdown),
            refreshed after a deletion.
    """

    def refresh(state, _run_id=None):
        return board_update(board, services, state, latest=True)

    def pick(state, picked):
        return overlay(board, services, ensure_client(state)["client"], picked)

    def ask(ids: list[str], question: str) -> dict:
        return {board.pending: ids, board.confirm: gr.Column(visible=True), board.confirm_text: question,
                board.note: gr.Markdown(visible=False)}

    def ask_delete(state, run_id):
        owner = ensure_client(state)["client"]
        try:
            info = services.runs.info(run_id, owner)
        except RunNotFound:
            return {board.note: gr.Markdown("Choose a run to delete first.", visible=True)}
        return ask([info.run_id], f"Delete **{_cell(info.title())}**? This cannot be undone.")

    def ask_clear(state):
        ids = [i.run_id for i in services.runs.list(ensure_client(state)["client"])]
        if not ids:
            return {board.note: gr.Markdown("You have no runs to delete.", visible=True)}
        many = f"all {len(ids)} of your runs" if len(ids) > 1 else "your only run"
        return ask(ids, f"Delete **{many}**? Their curves and models go, and this cannot be undone.")

    def confirmed(state, pending, picked):
        owner = ensure_client(state)["client"]
        gone = 0
        for run_id in pending or []:
            try:
                services.runs.delete(run_id, owner)
                gone += 1
            except RunNotFound:  # already gone, or not theirs: the same answer
                continue
        update = board_update(board, services, state, picked=picked)
        said = f"🗑 Deleted {gone} run{'s' * (gone != 1)}." if gone else "Nothing was deleted: those runs were already gone."
        update.update({board.pending: [], board.confirm: gr.Column(visible=False),
                       board.note: gr.Markdown(said, visible=True), run_dropdown: run_choices(state)})
        return update

    def cancelled():
        return {board.pending: [], board.confirm: gr.Column(visible=False), board.note: gr.Markdown(visible=False)}

    def prepare_download(state, run_id, fmt, progress=gr.Progress()):
        """Build (or find) the download: progress shows on the file while TFLite converts."""
        owner = ensure_client(state)["client"]
        if not run_id:
            return {board.export_note: gr.Markdown("Choose one of your runs to download first.", visible=True)}
        try:
            path = services.exports.export(run_id, fmt, owner, progress=lambda done, text: progress(done, desc=text))
        except RunNotFound:
            return {board.export_note: gr.Markdown("That run is gone: choose another.", visible=True)}
        except ExportError as e:
            return {board.export_note: gr.Markdown(f"⚠️ {e}", visible=True)}
        return {board.export_file: gr.File(value=hand_out(path), visible=True), board.export_note: gr.Markdown(visible=False)}

    def preparing():
        return {board.export_file: gr.File(value=None, visible=False),
                board.export_note: gr.Markdown("⏳ Preparing your download…", visible=True)}

    everything = [board.table, board.picked, board.loss_plot, board.accuracy_plot, board.doomed, board.export_run]
    asking = [board.pending, board.confirm, board.confirm_text, board.note]
    private = dict(api_visibility="private")
    new_run.change(refresh, [session, new_run], everything, **private)
    board.picked.input(pick, [session, board.picked], [board.loss_plot, board.accuracy_plot], **private,
                       trigger_mode="always_last")
    board.delete_button.click(ask_delete, [session, board.doomed], asking, **private)
    board.clear_button.click(ask_clear, session, asking, **private)
    board.yes_button.click(confirmed, [session, board.pending, board.picked], [*everything, *asking, run_dropdown],
                           **private)
    board.cancel_button.click(cancelled, None, [board.pending, board.confirm, board.note], **private)
    exporting = [board.export_file, board.export_note]
    board.export_button.click(preparing, None, exporting, **private, show_progress="hidden").then(
        prepare_download, [session, board.export_run, board.export_format], exporting, **private,
        concurrency_id=EXPORT_POOL, concurrency_limit=EXPORT_LIMIT)
    # another choice: the file shown is no longer what the menus say
    for menu in (board.export_run, board.export_format):
        menu.input(lambda: {board.export_file: gr.File(value=None, visible=False),
                            board.export_note: gr.Markdown(visible=False)}, None, exporting, **private)


def load_board(board: RunsBoard, services: Services):
    """(handler, outputs) for the page's load: the board with the latest two runs ticked."""
    return (lambda state: board_update(board, services, state, latest=True),
            [board.table, board.picked, board.loss_plot, board.accuracy_plot, board.doomed, board.export_run])
