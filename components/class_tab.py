"""The Class tab: the teacher's console (issue 16).

Shown on the teacher's link (`/?teacher`), and inert until the teacher's key is typed into its
field (never the URL, which a projector would show): the key is kept for this page in server-side
session state, and every action checks it again on the server (lab.classroom, constant time).

- The board: every student by display name, their job (state, epoch, accuracy), best run and a
  small curve; sortable; the class's best runs on one chart. A timer refreshes it while open.
- Steer: push a preset (settings as JSON); lock models, datasets and the most epochs.
- Control: a time limit per job, the queue's length, pause/resume, stop one job or all, clear
  the class (asked first).
- Project mode: one run full-screen in large type, for the projector.

Handlers answer {component: update}; a wrong or missing key changes nothing but the message line.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

import gradio as gr

from lab import charts
from lab.classroom import ClassroomError
from lab.contract import StudentRow
from lab.datasets import DATASETS
from lab.hparams import HParamsError
from lab.runs import RunNotFound

from components.services import Services, ensure_client

BOARD_SECONDS = 2
MAX_EPOCHS = 200  # the epochs slider's top: there, no lock
SORTS = {"joined": "order they joined", "name": "name", "best": "best accuracy", "now": "accuracy now", "state": "state"}
STATE_ORDER = {"running": 0, "queued": 1, "done": 2, "stopped": 3, "failed": 4, "": 5}
MAX_OVERLAID = len(charts.RUN_COLOURS)  # best runs on the class chart (the best ones)
LOCKED = "🔒 Enter the teacher key to open the console."


@dataclass
class ClassTab:
    tab: gr.Tab  # hidden unless the page was opened with ?teacher
    key_box: gr.Textbox
    open_button: gr.Button
    key: gr.State  # the accepted key, for this page only (server-side)
    message: gr.Markdown
    console: gr.Column  # everything below the key, hidden until it is right
    timer: gr.Timer
    sort: gr.Radio
    table: gr.HTML
    summary: gr.Markdown  # the queue, the locks, the limits in one line
    best_plot: gr.Plot
    shown: gr.State  # what the lists and the chart show now: skip redrawing what did not change
    preset: gr.Textbox
    push_button: gr.Button
    withdraw_button: gr.Button
    models: gr.CheckboxGroup
    datasets: gr.CheckboxGroup
    epochs_max: gr.Slider
    lock_button: gr.Button
    lift_button: gr.Button
    job_seconds: gr.Number
    queue_max: gr.Number
    limits_button: gr.Button
    pause_button: gr.Button
    resume_button: gr.Button
    stop_choice: gr.Dropdown
    stop_button: gr.Button
    stop_all_button: gr.Button
    clear_button: gr.Button
    confirm: gr.Column
    yes_button: gr.Button
    cancel_button: gr.Button
    project_choice: gr.Dropdown
    project_button: gr.Button
    projector: gr.Column
    projector_title: gr.Markdown
    projector_loss: gr.Plot
    projector_accuracy: gr.Plot
    close_button: gr.Button
    key_row: gr.Row | None = None  # the key and its button: hidden while the console is open


def create_class_tab() -> ClassTab:
    """The Class tab (a gr.Tab of its own, hidden until the page shows it to the teacher)."""
    import models

    with gr.Tab("Class", visible=False, elem_id="class-tab") as tab:
        gr.Markdown("## The class\nFor the teacher: see every student's training, steer the class, stop jobs, "
                    "project a run. The key was printed when the lab started.")
        with gr.Row(equal_height=True, elem_id="teacher-key-row") as key_row:
            key_box = gr.Textbox(label="Teacher key", type="password", scale=3, elem_id="teacher-key")
            open_button = gr.Button("Open the class console", variant="primary", scale=1, elem_id="teacher-open")
        message = gr.Markdown(LOCKED, elem_id="class-message")
        with gr.Column(visible=False, elem_id="class-console") as console:
            summary = gr.Markdown(elem_id="class-summary")
            sort = gr.Radio([(v, k) for k, v in SORTS.items()], value="joined", label="Sort students by",
                            elem_id="class-sort")
            table = gr.HTML(elem_id="class-board", container=False, padding=False)
            best_plot = gr.Plot(elem_id="class-best-plot", show_label=False)
            with gr.Accordion("Steer: a starting point and locks", open=True):
                with gr.Row():
                    with gr.Column():
                        preset = gr.Textbox(label="Preset: settings every student's Train tab takes (JSON)",
                                            value='{"model": "small_cnn", "epochs": 5}', lines=2, elem_id="class-preset")
                        with gr.Row():
                            push_button = gr.Button("📌 Push to every student", elem_id="class-push")
                            withdraw_button = gr.Button("Withdraw the preset", elem_id="class-withdraw")
                    with gr.Column():
                        models_box = gr.CheckboxGroup(list(models.MODELS), label="Models students may use (none ticked: any)",
                                                      elem_id="class-lock-models")
                        datasets_box = gr.CheckboxGroup(list(DATASETS), label="Datasets students may use (none ticked: any, "
                                                        "their own included)", elem_id="class-lock-datasets")
                        epochs_max = gr.Slider(1, MAX_EPOCHS, value=MAX_EPOCHS, step=1, label="Most epochs a job may have",
                                               elem_id="class-lock-epochs")
                        with gr.Row():
                            lock_button = gr.Button("🔒 Apply locks", elem_id="class-lock")
                            lift_button = gr.Button("Lift all locks", elem_id="class-unlock")
            with gr.Accordion("Control: limits, the queue, stopping, clearing", open=True):
                with gr.Row():
                    job_seconds = gr.Number(0, label="Time limit per job, in seconds (0: none)", minimum=0,
                                            elem_id="class-job-seconds")
                    queue_max = gr.Number(label="Most jobs waiting at once", minimum=1, precision=0,
                                          elem_id="class-queue-max")
                    limits_button = gr.Button("Apply limits", elem_id="class-limits")
                with gr.Row():
                    pause_button = gr.Button("⏸ Pause the queue", elem_id="class-pause")
                    resume_button = gr.Button("▶ Resume the queue", elem_id="class-resume")
                with gr.Row(equal_height=True):
                    stop_choice = gr.Dropdown([], label="Job to stop", scale=3, elem_id="class-stop-choice")
                    stop_button = gr.Button("⏹ Stop this job", scale=1, elem_id="class-stop")
                    stop_all_button = gr.Button("⏹ Stop every job", variant="stop", scale=1, elem_id="class-stop-all")
                clear_button = gr.Button("🗑 Clear the class: every run and dataset", variant="stop", elem_id="class-clear")
                with gr.Column(visible=False, variant="panel", elem_id="class-confirm") as confirm:
                    gr.Markdown("**Delete every student's runs and own datasets?** Running jobs are stopped first. "
                                "This cannot be undone.")
                    with gr.Row():
                        yes_button = gr.Button("Yes, clear the class", variant="stop", elem_id="class-clear-yes")
                        cancel_button = gr.Button("Cancel", elem_id="class-clear-cancel")
            with gr.Row(equal_height=True):
                project_choice = gr.Dropdown([], label="Run to project", scale=3, elem_id="class-project-choice")
                project_button = gr.Button("📽 Project full-screen", scale=1, elem_id="class-project")
        with gr.Column(visible=False, elem_id="projector") as projector:
            projector_title = gr.Markdown(elem_id="projector-title")
            with gr.Row():
                projector_loss = gr.Plot(show_label=False, elem_id="projector-loss")
                projector_accuracy = gr.Plot(show_label=False, elem_id="projector-accuracy")
            close_button = gr.Button("✕ Close the projection", elem_id="projector-close")
    return ClassTab(tab, key_box, open_button, gr.State(""), message, console, gr.Timer(BOARD_SECONDS, active=False),
                    sort, table, summary, best_plot, gr.State({}), preset, push_button, withdraw_button, models_box,
                    datasets_box, epochs_max, lock_button, lift_button, job_seconds, queue_max, limits_button,
                    pause_button, resume_button, stop_choice, stop_button, stop_all_button, clear_button, confirm,
                    yes_button, cancel_button, project_choice, project_button, projector, projector_title,
                    projector_loss, projector_accuracy, close_button, key_row)


# -- what the board shows (pure functions of the engine's typed board) ---------------------------------
def sparkline(rows: list) -> str:
    """A small inline SVG of a job's training accuracy so far, with words for a screen reader."""
    values = [r["accuracy"] for r in rows if r.get("accuracy") is not None][-60:]
    if len(values) < 2:
        return "—"
    w, h = 120, 28
    points = " ".join(f"{i * w / (len(values) - 1):.1f},{h - 2 - v * (h - 4):.1f}" for i, v in enumerate(values))
    return (f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
            f'aria-label="training accuracy from {values[0]:.0%} to {values[-1]:.0%}">'
            f'<polyline fill="none" stroke="#0072B2" stroke-width="2" points="{points}"/></svg>')


def _percent(value) -> str:
    return f"{value:.1%}" if value is not None else "—"


def sorted_students(students: list[StudentRow], by: str) -> list[StudentRow]:
    if by == "name":
        return sorted(students, key=lambda s: s.student.casefold())
    if by == "best":
        return sorted(students, key=lambda s: -(s.best_val_accuracy if s.best_val_accuracy is not None else -1))
    if by == "now":
        return sorted(students, key=lambda s: -(s.val_accuracy if s.val_accuracy is not None else -1))
    if by == "state":
        return sorted(students, key=lambda s: STATE_ORDER.get(s.state, 9))
    return list(students)


def board_html(students: list[StudentRow]) -> str:
    """The class as an HTML table; every name is escaped (students type them)."""
    if not students:
        return "<p>No student has opened the lab yet. Share the link (without <code>?teacher</code>).</p>"
    head = "".join(f'<th scope="col">{c}</th>' for c in
                   ("Student", "Job", "Epoch", "Accuracy now", "Best run", "Best accuracy", "Curve"))
    body = []
    for s in students:
        epoch = f"{s.epoch:.1f}" if s.epoch is not None else "—"
        cells = [html.escape(s.student), html.escape(s.state or "not trained yet"), epoch, _percent(s.val_accuracy),
                 html.escape(s.best_title or "—"), _percent(s.best_val_accuracy), sparkline(s.rows)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f"<table><caption>The class: one row per student</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def summary_markdown(board) -> str:
    queue = f"**Queue:** {board.queue_length} waiting" + (" · ⏸ **paused**" if board.paused else "")
    locks = "; ".join(lock.describe() for lock in board.locks.values()) or "none"
    limit = f"{board.limits.job_seconds:g} s a job" if board.limits.job_seconds else "no time limit"
    return f"{queue} · **Locks:** {locks} · **Limits:** {limit}, at most {board.limits.queue_max} waiting"


def count(n: int, thing: str) -> str:
    """“1 run”, “3 runs”."""
    return f"{n} {thing}{'s' * (n != 1)}"


def wire_class_tab(tab: ClassTab, services: Services, session: gr.BrowserState, demo: gr.Blocks) -> None:
    """Connect the console. Every handler takes the page's accepted key first and checks it again."""
    room = services.classroom

    def best_series(students: list[StudentRow]):
        best = sorted((s for s in students if s.run_id), key=lambda s: -(s.best_val_accuracy or 0))[:MAX_OVERLAID]
        series = []
        for s in best:
            try:
                series.append((f"{s.student}: {s.best_title}", services.runs.metrics(s.run_id)))
            except RunNotFound:
                continue
        return series

    def refresh(sort="joined", shown=None) -> dict:
        """The board, the summary, and (when they changed) the lists and the class chart."""
        board = room.board()
        students = sorted_students(board.students, sort)
        shown = dict(shown or {})
        update = {tab.table: board_html(students), tab.summary: summary_markdown(board)}
        jobs = [(f"{s.student} · {s.state}", s.job_id) for s in board.students if s.state in ("queued", "running")]
        runs = [(f"{room.name(i.owner)} · {i.title()}", i.run_id) for i in services.runs.list()[:100]]
        best = [s.run_id for s in board.students if s.run_id]
        for key, component, value in (("jobs", tab.stop_choice, jobs), ("runs", tab.project_choice, runs)):
            if shown.get(key) != [list(c) for c in value]:
                update[component] = gr.Dropdown(choices=value)  # the teacher's choice stays while it is listed
                shown[key] = [list(c) for c in value]
        if shown.get("best") != best:
            update[tab.best_plot] = charts.compare_figures(best_series(board.students))[1].update_layout(
                title=dict(text="The class's best runs: validation accuracy"))
            shown["best"] = best
        update[tab.shown] = shown
        return update

    def guarded(act):
        """A handler that does `act(...)` only for the right key; else it says so and changes nothing."""
        def handler(key, *args):
            try:
                room.check_key(key, opened=True)  # `key` is this page's server-side state: it opened before
            except ClassroomError:
                return {tab.message: LOCKED, tab.console: gr.Column(visible=False), tab.timer: gr.Timer(active=False),
                        tab.key_row: gr.Row(visible=True)}
            try:
                return act(*args)
            except (ClassroomError, HParamsError) as e:
                return {tab.message: f"⚠️ {e}"}
        return handler

    def open_console(request: gr.Request, typed, state, sort):
        try:
            room.check_key(typed)
        except ClassroomError as e:
            return {tab.message: f"⚠️ {e}", tab.key_box: ""}
        room.leave(ensure_client(state)["client"])  # the teacher's own page is not a student on the board
        limits = room.limits
        return {tab.key: typed.strip(), tab.key_box: "", tab.console: gr.Column(visible=True),
                tab.key_row: gr.Row(visible=False),
                tab.timer: gr.Timer(active=True), tab.message: "✅ The console is open on this page.",
                tab.job_seconds: limits.job_seconds or 0, tab.queue_max: limits.queue_max, **refresh(sort)}

    def said(text: str, sort, shown) -> dict:
        return {tab.message: text, **refresh(sort, shown)}

    def push(text, sort, shown):
        try:
            raw = json.loads(text or "{}")
        except json.JSONDecodeError as e:
            raise ClassroomError(f'the preset is not JSON ({e.msg}); write it like {{"model": "small_cnn", "epochs": 5}}') from None
        preset = room.push_preset(raw)
        return said(f"📌 Pushed to every student: {json.dumps(preset)}" if preset else "The preset is withdrawn.", sort, shown)

    def lock(models_ticked, datasets_ticked, epochs, sort, shown):
        raw = {}
        if models_ticked:
            raw["model"] = {"allowed": list(models_ticked)}
        if datasets_ticked:
            raw["dataset"] = {"allowed": list(datasets_ticked)}
        if epochs is not None and epochs < MAX_EPOCHS:
            raw["epochs"] = {"max": int(epochs)}
        locks = room.set_locks(raw)
        words = "; ".join(lock.describe() for lock in locks.values())
        return said(f"🔒 Locked: {words}." if locks else "No locks: every student may use every setting.", sort, shown)

    def lift(sort, shown):
        room.set_locks({})
        return {**said("All locks are lifted.", sort, shown), tab.models: [], tab.datasets: [], tab.epochs_max: MAX_EPOCHS}

    def limits(seconds, queue_max, sort, shown):
        got = room.set_limits({"job_seconds": seconds or 0, "queue_max": queue_max})
        limit = f"{got.job_seconds:g} s a job" if got.job_seconds else "no time limit"
        return said(f"Limits: {limit}, at most {got.queue_max} jobs waiting.", sort, shown)

    def pause(paused: bool):
        def act(sort, shown):
            room.pause(paused)
            return said("⏸ The queue is paused: queued jobs wait." if paused else "▶ The queue runs again.", sort, shown)
        return act

    def stop(job_id, sort, shown):
        if not job_id:
            return {tab.message: "Choose a job to stop first."}
        done = room.stop_job(job_id)
        return said(f"⏹ Stopped {html.escape(done['student'])}'s job.", sort, shown)

    def stop_all(sort, shown):
        return said(f"⏹ Stopped {len(room.stop_all())} jobs.", sort, shown)

    def ask_clear():
        return {tab.confirm: gr.Column(visible=True)}

    def clear(sort, shown):
        gone = room.clear()
        return {**said(f"🗑 The class is cleared: {count(gone['deleted_runs'], 'run')}, "
                       f"{count(gone['deleted_datasets'], 'dataset')} and {count(gone['deleted_frames'], 'webcam frame')} "
                       f"deleted, {count(gone['stopped_jobs'], 'job')} stopped.", sort, shown),
                tab.confirm: gr.Column(visible=False)}

    def project(run_id):
        if not run_id:
            return {tab.message: "Choose a run to project first."}
        try:
            info, rows = services.runs.info(run_id), services.runs.metrics(run_id)
        except RunNotFound:
            return {tab.message: "That run is gone."}
        loss, accuracy = charts.loss_figure(rows, info.hparams.total_epochs), charts.accuracy_figure(rows, info.hparams.total_epochs)
        for fig in (loss, accuracy):
            fig.update_layout(font=dict(size=22), height=560, margin=dict(l=80, r=30, t=70, b=70))
        title = f"# {html.escape(room.name(info.owner))}: {html.escape(info.title())}"
        return {tab.projector: gr.Column(visible=True), tab.projector_title: title, tab.projector_loss: loss,
                tab.projector_accuracy: accuracy}

    listing = [tab.table, tab.summary, tab.stop_choice, tab.project_choice, tab.best_plot, tab.shown]
    gate = [tab.message, tab.console, tab.timer, tab.key_row]
    private = dict(api_visibility="private")
    view = [tab.sort, tab.shown]

    tab.open_button.click(open_console, [tab.key_box, session, tab.sort],
                          [tab.key, tab.key_box, *gate, tab.job_seconds, tab.queue_max, *listing], **private)
    tab.key_box.submit(open_console, [tab.key_box, session, tab.sort],
                       [tab.key, tab.key_box, *gate, tab.job_seconds, tab.queue_max, *listing], **private)
    tab.timer.tick(guarded(refresh), [tab.key, *view], [*gate, *listing], **private, show_progress="hidden")
    tab.sort.change(guarded(refresh), [tab.key, *view], [*gate, *listing], **private)
    tab.push_button.click(guarded(push), [tab.key, tab.preset, *view], [*gate, *listing], **private)
    tab.withdraw_button.click(guarded(lambda sort, shown: push("{}", sort, shown)), [tab.key, *view], [*gate, *listing],
                              **private)
    tab.lock_button.click(guarded(lock), [tab.key, tab.models, tab.datasets, tab.epochs_max, *view], [*gate, *listing],
                          **private)
    tab.lift_button.click(guarded(lift), [tab.key, *view],
                          [*gate, *listing, tab.models, tab.datasets, tab.epochs_max], **private)
    tab.limits_button.click(guarded(limits), [tab.key, tab.job_seconds, tab.queue_max, *view], [*gate, *listing],
                            **private)
    tab.pause_button.click(guarded(pause(True)), [tab.key, *view], [*gate, *listing], **private)
    tab.resume_button.click(guarded(pause(False)), [tab.key, *view], [*gate, *listing], **private)
    tab.stop_button.click(guarded(stop), [tab.key, tab.stop_choice, *view], [*gate, *listing], **private)
    tab.stop_all_button.click(guarded(stop_all), [tab.key, *view], [*gate, *listing], **private)
    tab.clear_button.click(guarded(ask_clear), [tab.key], [*gate, tab.confirm], **private)
    tab.cancel_button.click(lambda: {tab.confirm: gr.Column(visible=False)}, None, [tab.confirm], **private)
    tab.yes_button.click(guarded(clear), [tab.key, *view], [*gate, *listing, tab.confirm], **private)
    tab.project_button.click(guarded(project), [tab.key, tab.project_choice],
                             [*gate, tab.projector, tab.projector_title, tab.projector_loss, tab.projector_accuracy],
                             **private)
    tab.close_button.click(lambda: {tab.projector: gr.Column(visible=False)}, None, [tab.projector], **private)

    def show_tab(request: gr.Request):
        teacher = request is not None and "teacher" in request.query_params
        return {tab.tab: gr.Tab(visible=True)} if teacher else gr.skip()

    demo.load(show_tab, None, [tab.tab], **private)
