"""Data tab: what a dataset holds (classes, counts, samples, how its images look), and adding
your own pictures as a zip of class folders."""

from __future__ import annotations

import re
from dataclasses import dataclass

import gradio as gr
import numpy as np
import pandas as pd

from lab import charts, datasets, downloads
from lab.archive import ArchiveError
from lab.image_folder import class_table

from components.pictures import picture_box, picture_html
from components.services import Services, dataset_dropdown, ensure_client

GRID_CAPTION = "Samples (one row per class)"
ZIP_HELP = (
    "Make one folder per class and zip them together: `cats/…`, `dogs/…` (a folder around them is fine). "
    "JPEG, PNG, GIF, WebP or BMP pictures; up to 5,000 files and 200 MB, each picture at most 16 megapixels "
    "and 1,000 megapixels in all. Pictures are resized to 96×96. "
    "Anything else in the zip is skipped and counted. Your dataset is yours alone: other students cannot see it."
)


@dataclass
class DataTab:
    dataset: gr.Dropdown
    summary: gr.Markdown
    counts: gr.Markdown  # a table of images per class (see table_markdown)
    counts_plot: gr.Plot
    grid: gr.HTML  # the sample grid: an <img> with alt text (components/pictures.py)
    reshuffle: gr.Button
    upload: gr.File
    upload_name: gr.Textbox
    upload_button: gr.Button
    upload_status: gr.Markdown


def create_data_tab(default: str = "digits") -> DataTab:
    with gr.Row():
        dataset = gr.Dropdown(list(datasets.DATASETS), value=default, label="Dataset", elem_id="data-dataset", scale=3)
        reshuffle = gr.Button("🔀 Other samples", scale=1, size="sm")
    summary = gr.Markdown(elem_id="data-summary")
    with gr.Row():
        with gr.Column(scale=2):
            grid = picture_box(GRID_CAPTION, elem_id="data-grid")
        with gr.Column(scale=1):
            counts_plot = gr.Plot(show_label=False)
            counts = gr.Markdown(elem_id="data-counts")
    with gr.Accordion("➕ Add your own pictures (a zip of class folders)", open=True):
        gr.Markdown(ZIP_HELP)
        with gr.Row():
            upload = gr.File(label="Zip of class folders", file_types=[".zip"], type="filepath",
                             elem_id="data-upload", scale=2)
            with gr.Column(scale=1):
                upload_name = gr.Textbox(label="Name", placeholder="e.g. pets (default: the zip's name)",
                                         max_length=60, elem_id="data-upload-name")
                upload_button = gr.Button("Add dataset", variant="primary", elem_id="data-upload-button")
        upload_status = gr.Markdown(elem_id="data-upload-status")
    return DataTab(dataset, summary, counts, counts_plot, grid, reshuffle, upload, upload_name, upload_button,
                   upload_status)


def describe(tab: DataTab, services: Services, name: str, owner: str, progress=None) -> dict:
    """{component: update}: summary, counts table, counts chart and sample grid for one dataset the
    student may see. `progress` (a gr.Progress) shows a first download's progress.
    """
    def downloading(title, fraction):
        if progress is not None:
            progress(fraction, desc=f"Downloading {title} (once)…")

    try:
        about = services.jobs.catalog.describe(name, owner)
        with downloads.reporting(downloading):
            data = services.jobs.catalog.load(name, owner)
    except datasets.DatasetError as e:
        return {tab.summary: f"⚠️ {e}", tab.counts: None, tab.counts_plot: None, tab.grid: None}
    look = data.look
    counts = data.counts()
    if about.builtin:
        what = f"**{about.title}**: {about.description}"
    else:
        what = f"**{about.title}** (yours, from {'your webcam' if about.source == 'webcam' else 'your zip'}; " \
               f"train on it with the name `{name}`)"
    summary = (
        f"{what}\n\n"
        f"{len(data.y):,} images in {data.num_classes} classes · {look.height}×{look.width} pixels · "
        f"{'grey' if look.channels == 1 else 'colour'}"
        f"{' · light strokes on a dark background' if look.light_on_dark else ''}. "
        "Training holds out the validation fraction (Train tab) to measure accuracy on unseen images."
        + (f"\n\n{about.look_why}" if about.look_why else "")
    )
    table = pd.DataFrame({"class": list(counts), "images": list(counts.values())}) if about.builtin else class_table(counts)
    if "warning" in table and not table["warning"].any():
        table = table.drop(columns="warning")  # all is well: no empty column
    table = table_markdown(table, "Images per class")
    return {tab.summary: summary, tab.counts: table, tab.counts_plot: charts.class_counts_figure(counts),
            tab.grid: grid_html(data, 0)}


def table_markdown(table: pd.DataFrame, title: str) -> str:
    """A titled Markdown table, every cell plain text (a student's class names may hold any character).

    Markdown rather than a gr.Dataframe: Gradio 6.24's (Colab's) table breaks two ARIA rules
    (aria-required-children, nested-interactive) and keeps the Tab key inside its cells.
    """
    def cell(value) -> str:
        text = f"{value:,}" if isinstance(value, (int, np.integer)) else str(value)
        return re.sub(r"([\\`*_{}\[\]<>()#+!|~-])", r"\\\1", text.replace("\n", " "))

    right = ["---:" if pd.api.types.is_numeric_dtype(table[c]) else "---" for c in table.columns]
    lines = [f"**{title}**", "", "| " + " | ".join(cell(c) for c in table.columns) + " |", "|" + "|".join(right) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def grid_html(data: datasets.Dataset, seed: int = 0) -> str:
    """The sample grid as a captioned picture whose alt text names each row's class."""
    per_class = 8
    alt = (f"{per_class} sample images per class, one row per class; rows from the top: "
           + ", ".join(data.class_names) + ".")
    return picture_html(datasets.sample_grid(data, per_class=per_class, seed=seed), alt, GRID_CAPTION,
                        pixelated=max(data.x.shape[1:3]) < 48)


def add_zip(services: Services, session, path, name, progress=None):
    """Import a student's zip. Returns (session, status markdown, new dataset id or None)."""
    session = ensure_client(session)
    if not path:
        return session, "Choose a zip file first (one folder of pictures per class).", None
    if progress is not None:
        progress(0.2, desc="Unpacking and reading your pictures…")
    try:
        info, imported = services.datasets.add_zip(session["client"], path, name)
    except (ArchiveError, datasets.DatasetError) as e:
        return session, f"⚠️ {e} Nothing was added.", None
    lines = [f"✅ Added **{info.name}**: {sum(info.counts.values()):,} pictures in {len(info.class_names)} classes "
             f"({', '.join(f'{c} {n}' for c, n in info.counts.items())}). It is selected here and in the Train tab."]
    lines += [f"- ⚠️ {n}" if ":" in n else f"- {n}" for n in imported.notes()]
    return session, "\n".join(lines), info.dataset_id


def wire_data_tab(tab: DataTab, services: Services, session: gr.BrowserState, train_dataset: gr.Dropdown) -> None:
    """Connect the dataset view and the zip upload.

    Args:
        train_dataset: the Train tab's dataset dropdown: a new dataset is selected there too.
    """
    outputs = [tab.summary, tab.counts, tab.counts_plot, tab.grid]

    def show(name, s, progress=gr.Progress()):
        return describe(tab, services, name, ensure_client(s)["client"], progress=progress)

    tab.dataset.change(show, [tab.dataset, session], outputs, api_visibility="private")
    # The seed must go back into the State: a State that is only read keeps its 0, so every click after
    # the first showed the same "other" samples.
    seed = gr.State(0)

    def other_samples(name, s, n):
        try:
            data = services.jobs.catalog.load(name, ensure_client(s)["client"])
        except datasets.DatasetError as e:
            return {tab.summary: f"⚠️ {e}"}
        return {tab.grid: grid_html(data, n + 1), seed: n + 1}

    tab.reshuffle.click(other_samples, [tab.dataset, session, seed], [tab.grid, seed, tab.summary],
                        api_visibility="private")

    def upload(request: gr.Request, s, path, name, progress=gr.Progress()):
        s = ensure_client(s)
        try:  # a new dataset costs disk and CPU: a flood of made-up students is refused here too
            services.admit(s["client"], request)
        except gr.Error as e:
            return {session: s, tab.upload_status: f"⚠️ {e.message} Nothing was added."}
        s, status, new = add_zip(services, s, path, name, progress)
        if new is None:
            return {session: s, tab.upload_status: status}
        return {session: s, tab.upload_status: status, tab.dataset: dataset_dropdown(services, s, new),
                train_dataset: dataset_dropdown(services, s, new), tab.upload: None}

    tab.upload_button.click(upload, [session, tab.upload, tab.upload_name],
                            [session, tab.upload_status, tab.dataset, train_dataset, tab.upload],
                            api_visibility="private", concurrency_limit=2)
