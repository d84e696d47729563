"""Data tab: what a dataset holds: classes, counts, a grid of samples, how its images look."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

from lab import charts, datasets


@dataclass
class DataTab:
    dataset: gr.Dropdown
    summary: gr.Markdown
    counts: gr.Dataframe
    counts_plot: gr.Plot
    grid: gr.Image
    reshuffle: gr.Button


def create_data_tab(default: str = "digits") -> DataTab:
    with gr.Row():
        dataset = gr.Dropdown(list(datasets.DATASETS), value=default, label="Dataset", elem_id="data-dataset", scale=3)
        reshuffle = gr.Button("🔀 Other samples", scale=1, size="sm")
    summary = gr.Markdown()
    with gr.Row():
        with gr.Column(scale=2):
            grid = gr.Image(label="Samples (one row per class)", interactive=False, elem_id="data-grid")
        with gr.Column(scale=1):
            counts_plot = gr.Plot(show_label=False)
            counts = gr.Dataframe(label="Images per class", interactive=False)
    return DataTab(dataset, summary, counts, counts_plot, grid, reshuffle)


def describe(name: str, seed: int = 0):
    """Summary, counts table, counts chart and sample grid for one dataset."""
    try:
        data = datasets.load(name)
    except datasets.DatasetError as e:
        return f"⚠️ {e}", None, None, None
    look = data.look
    counts = data.counts()
    summary = (
        f"**{name}**: {datasets.DATASETS[name].description}\n\n"
        f"{len(data.y):,} images in {data.num_classes} classes · {look.height}×{look.width} pixels · "
        f"{'grey' if look.channels == 1 else 'colour'}"
        f"{' · light strokes on a dark background' if look.light_on_dark else ''}. "
        "Training holds out the validation fraction (Train tab) to measure accuracy on unseen images."
    )
    table = pd.DataFrame({"class": list(counts), "images": list(counts.values())})
    return summary, table, charts.class_counts_figure(counts), datasets.sample_grid(data, seed=seed)


def wire_data_tab(tab: DataTab) -> None:
    outputs = [tab.summary, tab.counts, tab.counts_plot, tab.grid]
    tab.dataset.change(describe, tab.dataset, outputs, api_visibility="private")
    # The seed must go back into the State: a State that is only read keeps its 0, so every click after
    # the first showed the same "other" samples.
    seed = gr.State(0)
    tab.reshuffle.click(lambda name, n: (describe(name, n + 1)[3], n + 1), [tab.dataset, seed], [tab.grid, seed],
                        api_visibility="private")
