"""Train tab: controls built from lab.hparams.FIELDS, Train/Stop, status line, live charts."""

from __future__ import annotations

import math
from dataclasses import dataclass

import gradio as gr

from lab import charts
from lab.hparams import FIELDS, HParams, HParamsError, validate
from lab.jobs import JobError

from components.services import Services, ensure_client

POLL_SECONDS = 0.5
ELEM_IDS = {"dataset": "dataset-dropdown", "model": "model-dropdown", "learning_rate": "lr-slider",
            "batch_size": "batch-slider", "epochs": "epochs-slider"}
AUGMENT_FIELDS = ("augment_flip", "augment_rotation", "augment_zoom")


@dataclass
class TrainTab:
    controls: list  # one component per lab.hparams.FIELDS entry, in that order
    lr_readout: gr.Markdown
    model_info: gr.Markdown
    train_button: gr.Button
    stop_button: gr.Button
    status: gr.Markdown
    loss_plot: gr.Plot
    accuracy_plot: gr.Plot
    timer: gr.Timer
    share_link: gr.Markdown
    seen: gr.State  # how many metric rows the page already shows (skip redundant redraws)

    def control(self, name: str):
        """The control of one HParams field."""
        return self.controls[[f.name for f in FIELDS].index(name)]


def _control(f, value):
    """One Gradio control for one HParams field."""
    common = dict(label=f.label, info=f.help, elem_id=ELEM_IDS.get(f.name))
    if f.choices is not None:
        return gr.Dropdown(choices=f.choices(), value=value, **common)
    if f.kind is bool:
        return gr.Checkbox(value=value, **common)
    if f.log:  # sliders are linear: move the exponent instead
        return gr.Slider(math.log10(f.low), math.log10(f.high), value=round(math.log10(value), 1), step=0.1,
                         **{**common, "label": f"{f.label} (log₁₀)"})
    if f.name == "seed":
        return gr.Number(value=value, precision=0, minimum=f.low, maximum=f.high, **common)
    return gr.Slider(f.low, f.high, value=value, step=f.step, **common)


def values_to_hparams(values) -> HParams:
    """Control values (FIELDS order) -> validated HParams; the log slider is turned back into a rate."""
    raw = {}
    for f, v in zip(FIELDS, values):
        raw[f.name] = round(10 ** v, 8) if f.log and isinstance(v, (int, float)) else v
    return validate(raw)


def hparams_to_values(hp: HParams) -> list:
    return [round(math.log10(getattr(hp, f.name)), 1) if f.log else getattr(hp, f.name) for f in FIELDS]


def create_train_tab(defaults: HParams | None = None) -> TrainTab:
    hp = defaults or HParams()
    controls = {}
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            for f in FIELDS:
                if f.name in AUGMENT_FIELDS:
                    continue
                controls[f.name] = _control(f, getattr(hp, f.name))
                if f.log:
                    lr_readout = gr.Markdown(f"learning rate = **{getattr(hp, f.name):.2g}**")
            with gr.Accordion("Augmentation (random changes to training images)", open=False):
                for name in AUGMENT_FIELDS:
                    f = next(f for f in FIELDS if f.name == name)
                    controls[name] = _control(f, getattr(hp, name))
            model_info = gr.Markdown()
        with gr.Column(scale=2):
            with gr.Row():
                train_button = gr.Button("Train", variant="primary", elem_id="train-button")
                stop_button = gr.Button("Stop", variant="stop", elem_id="stop-button")
            status = gr.Markdown("Press **Train** to start.", elem_id="train-status")
            loss_plot = gr.Plot(charts.loss_figure([], hp.epochs), elem_id="loss-plot", show_label=False)
            accuracy_plot = gr.Plot(charts.accuracy_figure([], hp.epochs), elem_id="accuracy-plot", show_label=False)
            share_link = gr.Markdown(elem_id="share-link")
    return TrainTab([controls[f.name] for f in FIELDS], lr_readout, model_info, train_button, stop_button,
                    status, loss_plot, accuracy_plot, gr.Timer(POLL_SECONDS, active=False), share_link, gr.State(-1))


def status_markdown(snap: dict) -> str:
    """One status line for a job snapshot: queue place, then epoch, step, speed, accelerator."""
    state, p = snap["state"], snap["progress"]
    epochs = snap["hparams"]["epochs"]
    if state == "queued":
        return f"⏳ **Queued**: place {snap['position']} of {snap['queue_length']}. Training starts when the jobs ahead finish."
    if state == "running":
        if "epoch" not in p:
            return f"⚙️ **Preparing**: {p.get('phase', 'starting')}…"
        speed = f" · {p['images_per_sec']:,.0f} images/s" if p.get("images_per_sec") else ""
        accel = f" · {p['accelerator']}" if p.get("accelerator") else ""
        return f"🏃 **Training**: epoch {p['epoch']:.1f} of {epochs} · step {p['step']}{speed}{accel}"
    val = [r["val_accuracy"] for r in snap["metrics"] if r.get("val_accuracy") is not None]
    acc = f" Validation accuracy **{val[-1]:.1%}**." if val else ""
    icon = {"done": "✅", "stopped": "⏹️", "failed": "⚠️"}.get(state, "")
    return f"{icon} **{state.capitalize()}**: {snap['message']}.{acc}".replace("..", ".")


def _figures(snap: dict):
    epochs = snap["hparams"]["epochs"]
    return charts.loss_figure(snap["metrics"], epochs), charts.accuracy_figure(snap["metrics"], epochs)


def describe_model(name: str) -> str:
    """One line under the controls: what the chosen model is."""
    from models import MODELS

    spec = MODELS.get(name)
    return f"**{name}**: {spec.description}" if spec else ""


def wire_train_tab(tab: TrainTab, services: Services, session: gr.BrowserState, run_dropdown, run_choices) -> None:
    """Connect Train, Stop and the live poll.

    Args:
        run_dropdown: the Try tab's run picker, refreshed when a job saves a run.
        run_choices: session -> gr.Dropdown update listing the student's runs, newest selected.
    """

    def show_lr(exponent):
        return f"learning rate = **{10 ** exponent:.2g}**"

    def train(session, *values):
        session = ensure_client(session)
        try:
            hp = values_to_hparams(values)
            job = services.jobs.submit(session["client"], hp)
        except (HParamsError, JobError) as e:
            gr.Warning(str(e))
            # skip the timer: a refused second Train must not stop the watch on a running job
            return session, f"⚠️ {e}", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        session["job"] = job.job_id
        snap = services.jobs.snapshot(job.job_id)
        return (session, status_markdown(snap), *_figures(snap), gr.Timer(active=True), len(snap["metrics"]),
                f"🔗 [Link to these settings](?{hp.to_query()}) to share with the class")

    def stop(session):
        job_id = ensure_client(session)["job"]
        try:
            job = services.jobs.stop(job_id)
        except JobError:
            return "Nothing to stop: no job is running for you."
        if job.state == "running":
            return "⏹️ **Stopping** after the current step…"
        return status_markdown(services.jobs.snapshot(job_id))  # already ended: keep its summary line

    def poll(session, seen):
        """Called by the timer: redraw only when there is something new."""
        job_id = ensure_client(session)["job"]
        try:
            snap = services.jobs.snapshot(job_id)
        except JobError:
            return gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False), seen, gr.skip()
        active = snap["state"] in ("queued", "running")
        n = len(snap["metrics"])
        figs = _figures(snap) if n != seen or not active else (gr.skip(), gr.skip())
        saved = run_choices(session) if not active and snap["run_id"] else gr.skip()
        return status_markdown(snap), *figs, gr.Timer(active=active), n, saved

    model, lr = tab.control("model"), tab.control("learning_rate")
    model.change(describe_model, model, tab.model_info, api_visibility="private")
    lr.change(show_lr, lr, tab.lr_readout, api_visibility="private", show_progress="hidden")
    outputs = [session, tab.status, tab.loss_plot, tab.accuracy_plot, tab.timer, tab.seen, tab.share_link]
    tab.train_button.click(train, [session, *tab.controls], outputs, api_visibility="private", concurrency_limit=None)
    tab.stop_button.click(stop, session, tab.status, api_visibility="private", concurrency_limit=None)
    # Polls are cheap reads of a snapshot: no concurrency limit, no spinner.
    tab.timer.tick(poll, [session, tab.seen], [tab.status, tab.loss_plot, tab.accuracy_plot, tab.timer, tab.seen, run_dropdown],
                   api_visibility="private", concurrency_limit=None, show_progress="hidden")


def reattach(services: Services, session: dict, query: dict | None = None):
    """On page load: the student's last job (running or finished) with its whole curve and knobs.

    With no job to show, hyperparameters in the page's URL (a shared experiment link) fill the
    controls instead. Returns (session, status, loss, accuracy, timer, seen, *control values).
    """
    session = ensure_client(session)
    keep = [gr.skip()] * len(FIELDS)
    try:
        snap = services.jobs.snapshot(session["job"])
    except JobError:
        snap = None
    if snap is not None:
        active = snap["state"] in ("queued", "running")
        return (session, status_markdown(snap), *_figures(snap), gr.Timer(active=active), len(snap["metrics"]),
                *hparams_to_values(validate(snap["hparams"])))
    latest = services.runs.latest(session["client"])
    if latest is not None:
        df = services.runs.metrics(latest.run_id)
        epochs = latest.hparams.epochs
        note = f"Your last run **{latest.run_id}** ({latest.state}; the app has restarted since)."
        return (session, note, charts.loss_figure(df, epochs), charts.accuracy_figure(df, epochs),
                gr.Timer(active=False), len(df), *hparams_to_values(latest.hparams))
    values, note = keep, "Press **Train** to start."
    shared = {k: v for k, v in (query or {}).items() if k in {f.name for f in FIELDS}}
    if shared:
        try:
            values = hparams_to_values(HParams.from_query(shared))
            note = "Settings loaded from the link. Press **Train** to start."
        except HParamsError as e:
            note = f"⚠️ The link's settings were not used: {e}"
    return (session, note, gr.skip(), gr.skip(), gr.Timer(active=False), -1, *values)
