"""Train tab: controls built from lab.hparams.FIELDS, Train/Stop, status line, live charts,
the chosen model's size and layers, and a preview of the augmentation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import gradio as gr

from lab import charts, datasets
from lab.hparams import FIELDS, HParams, HParamsError, validate
from lab.jobs import JobError

from components.pictures import picture_box, picture_html
from components.services import Services, ensure_client

POLL_SECONDS = 0.5
ELEM_IDS = {"dataset": "dataset-dropdown", "model": "model-dropdown", "learning_rate": "lr-slider",
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
    lr_readout: gr.Markdown
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

    def control(self, name: str):
        """The control of one HParams field."""
        return self.controls[[f.name for f in FIELDS].index(name)]


def _control(f, value, unavailable: str = ""):
    """One Gradio control for one HParams field (greyed out, saying why, when `unavailable`)."""
    common = dict(label=f.label, info=f"{f.help} {unavailable}".strip(), elem_id=ELEM_IDS.get(f.name, f"hp-{f.name}"))
    if unavailable:
        common["interactive"] = False
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
    from lab import augment

    hp = defaults or HParams()
    missing = augment.unavailable()  # field name -> why it cannot be used here (keras-cv absent)
    controls = {}
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            for f in FIELDS:
                if f.group != "main":
                    continue
                controls[f.name] = _control(f, getattr(hp, f.name))
                if f.log:
                    lr_readout = gr.Markdown(f"learning rate = **{getattr(hp, f.name):.2g}**")
                if f.name == "model":
                    model_info = gr.Markdown(elem_id="model-info")
                    with gr.Accordion("The model's layers", open=False):
                        model_layers = gr.Code(language=None, show_label=False, elem_id="model-layers")
        with gr.Column(scale=2):
            with gr.Row():
                train_button = gr.Button("Train", variant="primary", elem_id="train-button")
                stop_button = gr.Button("Stop", variant="stop", elem_id="stop-button")
            status = gr.Markdown("Press **Train** to start.", elem_id="train-status")
            loss_plot = gr.Plot(charts.loss_figure([], hp.epochs), elem_id="loss-plot", show_label=False)
            accuracy_plot = gr.Plot(charts.accuracy_figure([], hp.epochs), elem_id="accuracy-plot", show_label=False)
            share_link = gr.Markdown(elem_id="share-link")
            gr.Markdown(CHART_HELP)
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
    return TrainTab([controls[f.name] for f in FIELDS], lr_readout, model_info, model_layers, preview_button,
                    preview_text, preview_image, train_button, stop_button, status, loss_plot, accuracy_plot,
                    gr.Timer(POLL_SECONDS, active=False), share_link, gr.State(-1))


def status_markdown(snap: dict) -> str:
    """One status line for a job snapshot: queue place, then epoch, step, speed, accelerator."""
    state, p = snap["state"], snap["progress"]
    epochs = _total_epochs(snap["hparams"])
    if state == "queued":
        if snap["position"] <= 1:
            return "⏳ **Queued**: next in line; training starts as soon as the accelerator is free."
        return (f"⏳ **Queued**: place {snap['position']} of {snap['queue_length']}. Training starts when the "
                f"{snap['position'] - 1} job{'s' * (snap['position'] > 2)} ahead finish{'es' * (snap['position'] == 2)}.")
    if state == "running":
        if "epoch" not in p:
            done = f" {p['fraction']:.0%}" if isinstance(p.get("fraction"), (int, float)) else ""
            return f"⚙️ **Preparing**: {p.get('phase', 'starting')}…{done}"
        speed = f" · {p['images_per_sec']:,.0f} images/s" if p.get("images_per_sec") else ""
        accel = f" · {p['accelerator']}" if p.get("accelerator") else ""
        doing = "Fine-tuning" if p.get("phase") == "fine-tuning" else "Training"
        note = f" · {p['note']}" if p.get("note") else ""
        return f"🏃 **{doing}**: epoch {p['epoch']:.1f} of {epochs} · step {p['step']}{speed}{accel}{note}"
    val = [r["val_accuracy"] for r in snap["metrics"] if r.get("val_accuracy") is not None]
    acc = f" Validation accuracy **{val[-1]:.1%}**." if val else ""
    icon = {"done": "✅", "stopped": "⏹️", "failed": "⚠️"}.get(state, "")
    return f"{icon} **{state.capitalize()}**: {snap['message']}.{acc}".replace("..", ".")


def _total_epochs(hparams: dict) -> int:
    return int(hparams.get("epochs", 0)) + int(hparams.get("fine_tune_epochs", 0) or 0)


def _figures(snap: dict):
    return figures(snap["metrics"], snap["hparams"])


def figures(rows, hparams: dict):
    """Loss and accuracy charts for a job's rows, the x axis spanning all its planned epochs."""
    ft = int(hparams["epochs"]) if hparams.get("fine_tune_epochs") else None
    total = _total_epochs(hparams)
    return charts.loss_figure(rows, total, ft), charts.accuracy_figure(rows, total, ft)


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
    return f"{line}\n\nFor {title} ({'×'.join(map(str, shape))} images, {classes} classes): **{total:,} parameters** ({trainable}).", table


def wire_train_tab(tab: TrainTab, services: Services, session: gr.BrowserState, run_dropdown, run_choices) -> None:
    """Connect Train, Stop and the live poll.

    Args:
        run_dropdown: the Try tab's run picker, refreshed when a job saves a run.
        run_choices: session -> gr.Dropdown update listing the student's runs, newest selected.
    """

    def show_lr(exponent):
        return f"learning rate = **{10 ** exponent:.2g}**"

    def train(request: gr.Request, session, *values):
        session = ensure_client(session)
        try:
            hp = values_to_hparams(values)
            services.admit(session["client"], request)
            job = services.jobs.submit(session["client"], hp)
        except (HParamsError, JobError, gr.Error) as e:
            message = e.message if isinstance(e, gr.Error) else str(e)
            # No toast: the status line says it, next to the button (the running job's line comes back
            # with the next poll). Skip the timer: a refused second Train must not stop the watch on it.
            return session, f"⚠️ {message}", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        session["job"] = job.job_id
        snap = services.jobs.snapshot(job.job_id, session["client"])
        return (session, status_markdown(snap), *_figures(snap), gr.Timer(active=True), len(snap["metrics"]),
                share_link_markdown(hp))

    def stop(session):
        session = ensure_client(session)
        try:
            job = services.jobs.stop(session["job"], session["client"])
        except JobError:
            return "Nothing to stop: no job is running for you."
        if job.state == "running":
            return "⏹️ **Stopping** after the current step…"
        # already ended: keep its summary line
        return status_markdown(services.jobs.snapshot(session["job"], session["client"]))

    def poll(session, seen):
        """Called by the timer: redraw only when there is something new."""
        session = ensure_client(session)
        try:
            snap = services.jobs.snapshot(session["job"], session["client"])
        except JobError:
            return gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False), seen, gr.skip()
        active = snap["state"] in ("queued", "running")
        n = len(snap["metrics"])
        figs = _figures(snap) if n != seen or not active else (gr.skip(), gr.skip())
        saved = run_choices(session) if not active and snap["run_id"] else gr.skip()
        return status_markdown(snap), *figs, gr.Timer(active=active), n, saved

    model, lr, dataset = tab.control("model"), tab.control("learning_rate"), tab.control("dataset")
    for trigger in (model, dataset):
        trigger.change(lambda m, d, s: describe_model(services, m, d, s), [model, dataset, session],
                       [tab.model_info, tab.model_layers], api_visibility="private")

    def preview(session, *values):
        """The same training images, augmented several times, with the knobs as they are now."""
        from lab import augment

        try:
            hp = values_to_hparams(values)
            data = services.jobs.catalog.load(hp.dataset, ensure_client(session)["client"])
            grid = augment.preview_grid(data, hp)
        except (HParamsError, datasets.DatasetError, ValueError) as e:
            return f"⚠️ {e}", None
        alt = ("A few training images, one per row: first as they are, then as augmentation may change "
               "them in different epochs.")
        return augment.describe(hp, data.look), picture_html(grid, alt, PREVIEW_CAPTION, pixelated=True)

    tab.preview_button.click(preview, [session, *tab.controls], [tab.preview_text, tab.preview_image],
                             api_visibility="private", concurrency_limit=2)
    lr.change(show_lr, lr, tab.lr_readout, api_visibility="private", show_progress="hidden")
    outputs = [session, tab.status, tab.loss_plot, tab.accuracy_plot, tab.timer, tab.seen, tab.share_link]
    tab.train_button.click(train, [session, *tab.controls], outputs, api_visibility="private", concurrency_limit=None)
    tab.stop_button.click(stop, session, tab.status, api_visibility="private", concurrency_limit=None)
    # Polls are cheap reads of a snapshot: no concurrency limit, no spinner.
    tab.timer.tick(poll, [session, tab.seen], [tab.status, tab.loss_plot, tab.accuracy_plot, tab.timer, tab.seen, run_dropdown],
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


def reattach(services: Services, session: dict, query: dict | None = None):
    """On page load: the student's last job (running or finished) with its whole curve and knobs.

    Hyperparameters in the page's URL (a shared experiment link) fill the controls, and win over
    the last job's or run's settings (the status says so); the curve is still the last one, and
    its "Link to these settings" comes back with it. Returns (session, status, loss, accuracy,
    timer, seen, *control values, share link).
    """
    session = ensure_client(session)
    shared = {k: v for k, v in (query or {}).items() if k in {f.name for f in FIELDS}}
    link_values, link_note = None, ""
    if shared:
        try:
            link_values = hparams_to_values(HParams.from_query(shared))
        except HParamsError as e:
            link_note = f"⚠️ The link's settings were not used: {e}"
    try:
        snap = services.jobs.snapshot(session["job"], session["client"])
    except JobError:
        snap = None
    if snap is not None:
        hp = validate(snap["hparams"])
        active = snap["state"] in ("queued", "running")
        status, figs, timer, seen = status_markdown(snap), _figures(snap), gr.Timer(active=active), len(snap["metrics"])
    else:
        latest = services.runs.latest(session["client"])
        if latest is None:
            if link_values is not None:
                link_note = f"{LINK_LOADED}. Press **Train** to start."
            return (session, link_note or "Press **Train** to start.", gr.skip(), gr.skip(), gr.Timer(active=False), -1,
                    *(link_values or [gr.skip()] * len(FIELDS)), gr.skip())
        hp = latest.hparams
        df = services.runs.metrics(latest.run_id)
        status = f"Your last run **{latest.run_id}** ({latest.state}; the app has restarted since)."
        figs, timer, seen = figures(df, hp.to_dict()), gr.Timer(active=False), len(df)
    if link_values is not None:
        link_note = LINK_REPLACED
    status = f"{status}\n\n{link_note}" if link_note else status
    return (session, status, *figs, timer, seen, *(link_values or hparams_to_values(hp)),
            share_link_markdown(hp, replaced=link_values is not None))
