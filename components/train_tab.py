"""Train tab: controls built from lab.hparams.FIELDS, Train/Stop, status line, live charts,
the chosen model's size and layers, and a preview of the augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from gradio.components.plot import PlotData

from lab import charts, datasets
from lab.contract import JobView
from lab.evaluation import VERDICT_MARK
from lab.hparams import FIELDS, HParams, HParamsError, number_text, validate
from lab.jobs import JobError

from components.evaluate_panel import EvaluatePanel, class_count, create_evaluate_panel
from components.layout import KNOBS_ID, MAIN_ID, phone_link
from components.pictures import picture_box, picture_html
from components.runs_board import RunsBoard, create_runs_board
from components.services import Services, ensure_client

POLL_SECONDS = 0.5
ELEM_IDS = {"dataset": "dataset-dropdown", "model": "model-dropdown", "learning_rate": "lr-dropdown",
            "batch_size": "batch-slider", "epochs": "epochs-slider"}
AUGMENT_COLUMNS = 3
CHART_HELP = ("Charts: the blue line is the loss/accuracy on the training images, several points an epoch, each the "
              "average over the batches trained since the previous point; orange dots are the held-out validation "
              "images, once an epoch. When orange stops improving while blue keeps going, the model has started to "
              "memorise (overfit).")
PREVIEW_CAPTION = "Left: the original; right: what training may see"
GROUPS = {"augment": "Augmentation (random changes to training images)",
          "transfer": "Transfer learning (models with a pretrained backbone)"}


@dataclass
class TrainTab:
    controls: list  # one component per lab.hparams.FIELDS entry, in that order
    model_info: gr.Markdown
    model_layers: gr.Code
    preview_button: gr.Button
    preview_text: gr.Markdown
    preview_image: gr.HTML  # a captioned <img> with alt text (components/pictures.py)
    train_button: gr.Button
    stop_button: gr.Button
    status: gr.Markdown
    loss_plot: gr.Plot
    accuracy_plot: gr.Plot
    timer: gr.Timer
    share_link: gr.Markdown
    seen: gr.State  # how many metric rows the page already shows (skip redundant redraws)
    board: RunsBoard | None = None  # the student's runs, compared (components/runs_board.py)
    new_run: gr.State | None = None  # the id of the run a job just saved: listeners refresh on its change
    evaluation: EvaluatePanel | None = None  # where the run goes wrong (components/evaluate_panel.py)
    shown: gr.State | None = None  # the status line the page shows now (a poll finding the same sends nothing)

    def control(self, name: str):
        """The control of one HParams field."""
        return self.controls[[f.name for f in FIELDS].index(name)]


def _control(f, value, unavailable: str = ""):
    """One Gradio control for one HParams field (greyed out, saying why, when `unavailable`)."""
    common = dict(label=f.label, info=f"{f.help} {unavailable}".strip(), elem_id=ELEM_IDS.get(f.name, f"hp-{f.name}"))
    if unavailable:
        common["interactive"] = False
    if f.ladder:  # exact values, the value itself on the control; a typed value in range is kept too
        return gr.Dropdown(choices=ladder_choices(f, value), value=value, allow_custom_value=True, **common)
    if f.choices is not None:
        return gr.Dropdown(choices=f.choices(), value=value, **common)
    if f.kind is bool:
        return gr.Checkbox(value=value, **common)
    if f.name == "seed":
        return gr.Number(value=value, precision=0, minimum=f.low, maximum=f.high, **common)
    return gr.Slider(f.low, f.high, value=value, step=f.step, **common)


def ladder_choices(f, value=None) -> list[tuple[str, float]]:
    """(label, value) pairs of a ladder field; a value that is not on the ladder (from a link, or
    typed) is offered too, marked, so it is shown and kept exactly."""
    choices = [(number_text(v), v) for v in f.ladder]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value not in f.ladder:
        choices.append((f"{number_text(value)} (your own value, between the usual steps)", value))
    return sorted(choices, key=lambda c: c[1])


def values_to_hparams(values) -> HParams:
    """Control values (FIELDS order) -> validated HParams (a typed learning rate arrives as text)."""
    return validate({f.name: v for f, v in zip(FIELDS, values)})


def hparams_to_values(hp: HParams) -> list:
    """Control updates showing `hp` (FIELDS order): a ladder's off-ladder value joins its choices."""
    return [gr.Dropdown(choices=ladder_choices(f, getattr(hp, f.name)), value=getattr(hp, f.name)) if f.ladder
            else getattr(hp, f.name) for f in FIELDS]


def create_train_tab(defaults: HParams | None = None) -> TrainTab:
    from lab import augment

    hp = defaults or HParams()
    missing = augment.unavailable()  # field name -> why it cannot be used here (keras-cv absent)
    controls = {}
    with gr.Row(elem_id="train-layout"):
        with gr.Column(scale=1, min_width=300, elem_id=KNOBS_ID):
            phone_link("↑ Back to Train and the charts", MAIN_ID, "to-train-link")
            for f in FIELDS:
                if f.group != "main":
                    continue
                controls[f.name] = _control(f, getattr(hp, f.name))
                if f.name == "model":
                    model_info = gr.Markdown(elem_id="model-info")
                    with gr.Accordion("The model's layers", open=False):
                        model_layers = gr.Code(language=None, show_label=False, elem_id="model-layers")
            # the rest of the knobs are full width under everything the main column grows after a run
            gr.Markdown("More settings, below the charts: [Augmentation](#augment-accordion) · "
                        "[Transfer learning](#transfer-accordion)", elem_id="more-knobs")
        with gr.Column(scale=2, elem_id=MAIN_ID):  # first on a phone (components/layout.py)
            with gr.Row():
                # Off until the page's load has put a link's (and the teacher's) settings into the controls:
                # a press before that trained the defaults (lab_app.py turns it on)
                train_button = gr.Button("Train", variant="primary", elem_id="train-button", interactive=False)
                stop_button = gr.Button("Stop", variant="stop", elem_id="stop-button")
            status = gr.Markdown("Press **Train** to start.", elem_id="train-status")
            phone_link("⚙️ Settings: model, learning rate… ↓", KNOBS_ID, "to-knobs-link")
            loss_plot = gr.Plot(charts.loss_figure([], hp.epochs), elem_id="loss-plot", show_label=False)
            accuracy_plot = gr.Plot(charts.accuracy_figure([], hp.epochs), elem_id="accuracy-plot", show_label=False)
            share_link = gr.Markdown(elem_id="share-link")
            gr.Markdown(CHART_HELP)
            board = create_runs_board()  # runs compared, right under the curves (issue 13)
            evaluation = create_evaluate_panel()
    # Full width below: many sliders, and a preview picture that needs room.
    with gr.Accordion(GROUPS["augment"], open=False, elem_id="augment-accordion"):
        with gr.Row():
            with gr.Column(scale=2):
                gr.Markdown("Each epoch sees slightly different versions of the training images, so the model "
                            "cannot just memorise them. Validation images are never changed. 0 = off.")
                augment_fields = [f for f in FIELDS if f.group == "augment"]
                with gr.Row():
                    for col in range(AUGMENT_COLUMNS):
                        with gr.Column(min_width=200):
                            for f in augment_fields[col::AUGMENT_COLUMNS]:
                                controls[f.name] = _control(f, getattr(hp, f.name), missing.get(f.name, ""))
            with gr.Column(scale=1, min_width=280):
                preview_button = gr.Button("👁 Preview on training images", elem_id="augment-preview-button")
                preview_text = gr.Markdown(elem_id="augment-preview-text")
                preview_image = picture_box(PREVIEW_CAPTION, elem_id="augment-preview")
    with gr.Accordion(GROUPS["transfer"], open=False, elem_id="transfer-accordion"):
        with gr.Row():
            for f in FIELDS:
                if f.group == "transfer":
                    controls[f.name] = _control(f, getattr(hp, f.name))
    return TrainTab([controls[f.name] for f in FIELDS], model_info, model_layers, preview_button,
                    preview_text, preview_image, train_button, stop_button, status, loss_plot, accuracy_plot,
                    gr.Timer(POLL_SECONDS, active=False), share_link, gr.State(-1), board=board,
                    new_run=gr.State(""), evaluation=evaluation, shown=gr.State(""))


def status_markdown(view: JobView) -> str:
    """One status line for a job: queue place, then epoch, step, speed, accelerator."""
    p = view.progress
    if view.state == "queued":
        if view.position <= 1:
            return f"⏳ **Queued**: next in line{about(view.eta_s)}; training starts as soon as the accelerator is free."
        ahead = view.position - 1
        return (f"⏳ **Queued**: {place(view.position)} in line{about(view.eta_s)}; training starts when the "
                f"{'job' if ahead == 1 else f'{ahead} jobs'} ahead finish{'es' * (ahead == 1)}.")
    if view.state == "running":
        if p.epoch is None:
            done = f" {p.fraction:.0%}" if p.fraction is not None else ""
            return f"⚙️ **Preparing**: {p.phase or 'starting'}…{done}"
        speed = f" · {p.images_per_sec:,.0f} images/s" if p.images_per_sec else ""
        accel = f" · {p.accelerator}" if p.accelerator else ""
        doing = "Fine-tuning" if p.phase == "fine-tuning" else "Training"
        note = f" · {p.note}" if p.note else ""
        return f"🏃 **{doing}**: epoch {p.epoch:.1f} of {view.total_epochs} · step {p.step}{speed}{accel}{note}"
    acc = f" Validation accuracy **{view.val_accuracy:.1%}**." if view.val_accuracy is not None else ""
    icon = {"done": "✅", "stopped": "⏹️", "failed": "⚠️"}.get(view.state, "")
    # the job's verdicts (near chance, few pictures, overfitting: lab.evaluation) on a line of their own,
    # and no green tick for a run that needs them
    message, mark, verdicts = view.message.partition(VERDICT_MARK)
    icon = "⚠️" if verdicts else icon
    line = f"{icon} **{view.state.capitalize()}**: {message}.{acc}".replace("..", ".")
    return f"{line}\n\n{mark.strip()} {verdicts}" if verdicts else line


def place(n: int) -> str:
    """1st, 2nd, 3rd, 4th, … 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def about(seconds: float | None) -> str:
    """", about 40 s" / ", about 3 min" (rounded: an estimate), or "" when not known."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f", about {max(5, round(seconds / 5) * 5):.0f} s"
    return f", about {round(seconds / 60):.0f} min"


def figures(rows, hp: HParams, num_classes: int | None = None):
    """Loss and accuracy charts for a job's rows, the x axis spanning all its planned epochs
    (with `num_classes`, the accuracy chart's chance line)."""
    ft = hp.epochs if hp.fine_tune_epochs else None
    # plotly JSON around a kept shell (lab.charts.live_json): every watching student's tick, ~1 ms not ~26
    return (PlotData(type="plotly", plot=charts.live_json(rows, "loss", hp.total_epochs, ft)),
            PlotData(type="plotly", plot=charts.live_json(rows, "accuracy", hp.total_epochs, ft, num_classes)))


def describe_model(services: Services, name: str, dataset: str, session) -> tuple[str, str]:
    """What the chosen model is, and its size and layers when built for the chosen dataset.

    Returns (markdown line, plain-text table of layers). Nothing is downloaded: built-in datasets
    declare their look, and transfer models are described without their ImageNet weights.
    """
    import models

    spec = models.MODELS.get(name)
    if spec is None:
        return "", ""
    line = f"**{name}**: {spec.description}"
    try:
        about = services.jobs.catalog.describe(dataset, ensure_client(session)["client"])
    except datasets.DatasetError:
        return line, ""
    shape, classes, title = about.look.shape(), about.num_classes, about.title
    total, table = models.summary(name, shape, classes)
    trainable = table.rsplit(", ", 1)[-1]  # "N trainable"
    why = f" {about.look_why}" if about.look_why else ""  # a student's own pictures: the size and colour chosen, and why
    return f"{line}\n\nFor {title} ({'×'.join(map(str, shape))} images, {classes} classes): **{total:,} parameters** ({trainable}).{why}", table


def poll_update(tab: TrainTab, services: Services, state, seen, shown, run_dropdown, run_choices) -> dict:
    """The timer's tick: only what changed is sent (gr.skip() for the rest), so a tick that finds
    nothing new costs one job view and sends nothing; the charts are rebuilt only when rows arrived.

    Args:
        seen: how many metric rows the page shows; shown: the status line it shows.
        run_dropdown, run_choices: the Try tab's run picker and its refresh (when a run was saved).
    """
    state = ensure_client(state)
    try:
        view = services.jobs.view(state["job"], state["client"])
    except JobError:
        return {tab.timer: gr.Timer(active=False)}
    plots = (tab.loss_plot, tab.accuracy_plot)
    status = status_markdown(view)
    same = status == shown
    update = {tab.status: gr.skip() if same else status, tab.shown: gr.skip() if same else status,
              tab.timer: gr.skip() if view.active else gr.Timer(active=False),
              tab.seen: gr.skip() if len(view.rows) == seen else len(view.rows),
              **dict.fromkeys(plots, gr.skip()), run_dropdown: gr.skip(), tab.new_run: gr.skip()}
    if len(view.rows) != seen or not view.active:
        update.update(zip(plots, figures(view.rows, view.hparams, class_count(services, view.hparams, state["client"]))))
    if not view.active and view.run_id:
        update[run_dropdown] = run_choices(state)
        update[tab.new_run] = view.run_id
    return update


def wire_train_tab(tab: TrainTab, services: Services, session: gr.BrowserState, run_dropdown, run_choices) -> None:
    """Connect Train, Stop and the live poll. Every handler answers {component: update}.

    Args:
        run_dropdown: the Try tab's run picker, refreshed when a job saves a run.
        run_choices: session -> gr.Dropdown update listing the student's runs, newest selected.
    """
    charts_of = (tab.loss_plot, tab.accuracy_plot)

    def train(request: gr.Request, state, *values):
        state = ensure_client(state)
        try:
            hp = values_to_hparams(values)
            services.admit(state["client"], request)
            job = services.jobs.submit(state["client"], hp)
        except (HParamsError, JobError, gr.Error) as e:
            # A toast (the running job's next poll soon takes the status line back) and the status line; the
            # timer is left alone, so a refused second Train keeps watching the first job.
            message = e.message if isinstance(e, gr.Error) else str(e)
            gr.Warning(message)
            return {session: state, tab.status: f"⚠️ {message}", tab.shown: ""}  # the next poll redraws its line
        state["job"] = job.job_id
        view = services.jobs.view(job.job_id, state["client"])
        shown = figures(view.rows, hp, class_count(services, hp, state["client"]))
        line = status_markdown(view)
        return {session: state, tab.status: line, tab.shown: line, **dict(zip(charts_of, shown)),
                tab.timer: gr.Timer(active=True), tab.seen: len(view.rows), tab.share_link: share_link_markdown(hp)}

    def stop(state):
        state = ensure_client(state)
        try:
            job = services.jobs.stop(state["job"], state["client"])
        except JobError:
            return "Nothing to stop: no job is running for you."
        if job.state == "running":
            return "⏹️ **Stopping** after the current step…"
        return status_markdown(services.jobs.view(state["job"], state["client"]))  # already ended: its summary

    def poll(state, seen, shown):
        return poll_update(tab, services, state, seen, shown, run_dropdown, run_choices)

    model, dataset = tab.control("model"), tab.control("dataset")
    for trigger in (model, dataset):
        trigger.change(lambda m, d, s: describe_model(services, m, d, s), [model, dataset, session],
                       [tab.model_info, tab.model_layers], api_visibility="private")

    def preview(state, *values):
        """The same training images, augmented several times, with the knobs as they are now."""
        from lab import augment

        try:
            hp = values_to_hparams(values)
            data = services.jobs.catalog.load(hp.dataset, ensure_client(state)["client"])
            grid = augment.preview_grid(data, hp)
        except (HParamsError, datasets.DatasetError, ValueError) as e:
            return f"⚠️ {e}", None
        alt = ("A few training images, one per row: first as they are, then as augmentation may change "
               "them in different epochs.")
        return augment.describe(hp, data.look), picture_html(grid, alt, PREVIEW_CAPTION, pixelated=True)

    tab.preview_button.click(preview, [session, *tab.controls], [tab.preview_text, tab.preview_image],
                             api_visibility="private", concurrency_limit=2)
    outputs = [session, tab.status, *charts_of, tab.timer, tab.seen, tab.share_link, tab.shown]
    tab.train_button.click(train, [session, *tab.controls], outputs, api_visibility="private", concurrency_limit=None)
    tab.stop_button.click(stop, session, tab.status, api_visibility="private", concurrency_limit=None)
    # Polls are cheap reads of a job view: no concurrency limit, no spinner.
    tab.timer.tick(poll, [session, tab.seen, tab.shown],
                   [tab.status, *charts_of, tab.timer, tab.seen, run_dropdown, tab.new_run, tab.shown],
                   api_visibility="private", concurrency_limit=None, show_progress="hidden")


LINK_LOADED = "Settings loaded from the link"
LINK_REPLACED = f"🔗 {LINK_LOADED} (your last run's settings were replaced). Press **Train** to try them."


def share_link_markdown(hp: HParams, replaced: bool = False) -> str:
    """The "Link to these settings" line shown under the charts for the job or run they show.

    `replaced`: a shared link's settings fill the controls, so the line names the run's settings
    (and says so again: a running job's status line is soon replaced by its progress).
    """
    if replaced:
        return (f"🔗 The controls show the settings from the link · [Link to your last run's settings]"
                f"(?{hp.to_query()}) to share with the class")
    return f"🔗 [Link to these settings](?{hp.to_query()}) to share with the class"


def reattach(tab: TrainTab, services: Services, session: gr.BrowserState, state, query: dict | None = None) -> dict:
    """On page load: the student's last job (running or finished) with its whole curve and knobs.

    Hyperparameters in the page's URL (a shared experiment link) fill the controls, and win over
    the last job's or run's settings (the status says so); the curve is still the last one, and
    its "Link to these settings" comes back with it. Returns {component: update}, `session` included.
    """
    state = ensure_client(state)
    update = {session: state, tab.timer: gr.Timer(active=False)}
    shared = {k: v for k, v in (query or {}).items() if k in {f.name for f in FIELDS}}
    link_hp, link_note = None, ""
    if shared:
        try:
            link_hp = HParams.from_query(shared)
        except HParamsError as e:
            link_note = f"⚠️ The link's settings were not used: {e}"
    try:
        view = services.jobs.view(state["job"], state["client"])
    except JobError:
        view = None
    if view is not None:
        hp, rows, status = view.hparams, view.rows, status_markdown(view)
        update[tab.timer] = gr.Timer(active=view.active)
    else:
        latest = services.runs.latest(state["client"])
        if latest is None:
            if link_hp is not None:
                update.update(zip(tab.controls, hparams_to_values(link_hp)))
            update[tab.status] = link_note or (f"{LINK_LOADED}. Press **Train** to start." if link_hp else
                                               "Press **Train** to start.")
            update[tab.seen] = -1
            return update
        hp, rows = latest.hparams, services.runs.metrics(latest.run_id, state["client"])  # a DataFrame
        status = f"Your last run: **{latest.title()}** (the app has restarted since)."
    if link_hp is not None:
        link_note = LINK_REPLACED
    update.update(zip(tab.controls, hparams_to_values(link_hp or hp)))
    shown = figures(rows, hp, class_count(services, hp, state["client"]))  # with the chance line
    update.update(zip((tab.loss_plot, tab.accuracy_plot), shown))
    update.update({tab.status: f"{status}\n\n{link_note}" if link_note else status, tab.seen: len(rows),
                   tab.share_link: share_link_markdown(hp, replaced=link_hp is not None)})
    return update
