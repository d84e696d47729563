"""Pure plotly builders: metric rows (or a DataFrame) in, figure out. No Gradio, no state."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go

TRAIN_COLOUR = "#2563eb"
VAL_COLOUR = "#ea580c"
CHANCE_COLOUR = "#595959"  # 7:1 on white


def metrics_frame(rows) -> pd.DataFrame:
    """Rows from a TrainingLog (or a DataFrame) as a DataFrame with every expected column."""
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for col in ("epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy"):
        if col not in df:
            df[col] = pd.Series(dtype=float)
    return df


def _figure(df: pd.DataFrame, metric: str, title: str, epochs: int | None, percent: bool,
            fine_tune_from: int | None = None) -> go.Figure:
    fig = go.Figure()
    train = df.dropna(subset=[metric])
    val = df.dropna(subset=[f"val_{metric}"])
    fig.add_trace(go.Scatter(x=train["epoch"], y=train[metric], mode="lines", name="training",
                             line=dict(color=TRAIN_COLOUR, width=2)))
    fig.add_trace(go.Scatter(x=val["epoch"], y=val[f"val_{metric}"], mode="lines+markers", name="validation",
                             line=dict(color=VAL_COLOUR, width=2, dash="dot"), marker=dict(size=7)))
    # A fixed x range (0..epochs) keeps both charts aligned and lets students see how far along it is.
    xmax = max(epochs or 0, float(df["epoch"].max()) if len(df) else 1.0, 1.0)
    fig.update_layout(
        title=dict(text=title, x=0.02), height=320, margin=dict(l=50, r=20, t=50, b=45),
        xaxis=dict(title="epoch", range=[0, xmax], zeroline=False),
        yaxis=dict(title=title.lower(), tickformat=".0%" if percent else None, rangemode="tozero",
                   range=[0, 1.02] if percent else None),
        legend=dict(orientation="h", y=1.12, x=1, xanchor="right"),
        template="plotly_white", uirevision="keep",  # keep a student's zoom across live updates
    )
    if fine_tune_from:
        # Where the backbone was unfrozen: curves often jump here, and students should see why.
        fig.add_vline(x=fine_tune_from, line=dict(color="#888", dash="dash", width=1))
        fig.add_annotation(text="fine-tuning →", x=fine_tune_from, y=1, yref="paper", xanchor="left",
                           showarrow=False, font=dict(color="#666", size=11))
    if not len(df):
        fig.add_annotation(text="press Train to see the curve grow", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(color="#666"))  # 5.7:1 on white (WCAG AA)
    return fig


def loss_figure(rows, epochs: int | None = None, fine_tune_from: int | None = None) -> go.Figure:
    """Training loss several times an epoch, validation loss each epoch, x in epochs.

    `fine_tune_from`: the epoch where fine-tuning began (a dashed line), when it did.
    """
    return _figure(metrics_frame(rows), "loss", "Loss", epochs, percent=False, fine_tune_from=fine_tune_from)


def accuracy_figure(rows, epochs: int | None = None, fine_tune_from: int | None = None,
                    num_classes: int | None = None) -> go.Figure:
    """Training and validation accuracy on the same epoch axis as the loss chart.

    `num_classes`: when given, a dashed line at chance (1 / num_classes): what guessing scores.
    """
    fig = _figure(metrics_frame(rows), "accuracy", "Accuracy", epochs, percent=True, fine_tune_from=fine_tune_from)
    if num_classes and num_classes > 1:
        chance = 1 / num_classes
        fig.add_hline(y=chance, line=dict(color=CHANCE_COLOUR, dash="dash", width=1))
        fig.add_annotation(text=f"chance: {chance:.0%} (guessing among {num_classes} classes)", x=1, xref="paper",
                           xanchor="right", y=chance, yanchor="bottom", showarrow=False,
                           font=dict(color=CHANCE_COLOUR, size=11))
    return fig


def live_json(rows, metric: str, epochs: int | None = None, fine_tune_from: int | None = None,
              num_classes: int | None = None) -> str:
    """`loss_figure` or `accuracy_figure` (metric "loss" / "accuracy") as plotly JSON, for a chart that
    grows while a job trains: the figure around the points (layout, lines, notes) is built once per
    shape and kept; each tick only puts the points in. Building a go.Figure validates every property:
    ~13 ms a chart on a 2-core server, for each student watching, each second; this takes ~1 ms."""
    if isinstance(rows, pd.DataFrame):  # a saved run's metrics.csv: missing values are NaN
        rows = rows.to_dict("records")
    shell = _shell(metric, epochs, fine_tune_from, num_classes if metric == "accuracy" else None, not len(rows))
    train_x, train_y, val_x, val_y = [], [], [], []
    for r in rows:
        if _known(r.get(metric)):
            train_x.append(float(r["epoch"]))
            train_y.append(float(r[metric]))
        if _known(r.get(f"val_{metric}")):
            val_x.append(float(r["epoch"]))
            val_y.append(float(r[f"val_{metric}"]))
    xmax = max(epochs or 0, max((float(r["epoch"]) for r in rows), default=1.0), 1.0)
    layout = dict(shell["layout"], xaxis=dict(shell["layout"]["xaxis"], range=[0, xmax]))
    data = [dict(shell["data"][0], x=train_x, y=train_y), dict(shell["data"][1], x=val_x, y=val_y)]
    return json.dumps({"data": data, "layout": layout}, separators=(",", ":"))


def _known(value) -> bool:
    return value is not None and value == value  # NaN != NaN


@functools.lru_cache(maxsize=64)
def _shell(metric: str, epochs, fine_tune_from, num_classes, empty: bool) -> dict:
    """The plotly JSON of a chart with no points (its layout, lines and notes), built once per shape."""
    rows = [] if empty else [{"epoch": 0.0}]  # not empty: without the "press Train" note
    fig = (accuracy_figure(rows, epochs, fine_tune_from, num_classes) if metric == "accuracy"
           else loss_figure(rows, epochs, fine_tune_from))
    return json.loads(fig.to_json())


def class_counts_figure(counts: dict[str, int]) -> go.Figure:
    """A bar per class: how many images each class has."""
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), marker_color=TRAIN_COLOUR))
    fig.update_layout(title="Images per class", height=260, margin=dict(l=40, r=20, t=40, b=40),
                      template="plotly_white", xaxis=dict(type="category"))
    return fig


# One colour per run on the comparison charts (Okabe-Ito: told apart with the common colour blindnesses).
RUN_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
COMPARE_HINT = "tick two or more runs to lay their curves on one chart"


def overlay_figure(series, metric: str, title: str, percent: bool) -> go.Figure:
    """Several runs' curves on the same axes: one colour per run, training solid, validation dotted.

    Args:
        series: (legend name, metric rows or DataFrame) per run, in the order their colours are given.
        metric: "loss" or "accuracy" (validation is f"val_{metric}").
    The legend has one entry per run; a run's two traces share its legend group (clicking hides both).
    """
    fig = go.Figure()
    xmax = 1.0
    for k, (name, rows) in enumerate(series):
        df, colour = metrics_frame(rows), RUN_COLOURS[k % len(RUN_COLOURS)]
        name = str(name).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # plotly reads tags in names
        train, val = df.dropna(subset=[metric]), df.dropna(subset=[f"val_{metric}"])
        group = f"run-{k}"
        fig.add_trace(go.Scatter(x=train["epoch"], y=train[metric], mode="lines", name=name, legendgroup=group,
                                 line=dict(color=colour, width=2)))
        fig.add_trace(go.Scatter(x=val["epoch"], y=val[f"val_{metric}"], mode="lines+markers",
                                 name=f"{name} (validation)", legendgroup=group, showlegend=False,
                                 line=dict(color=colour, width=2, dash="dot"), marker=dict(size=6)))
        if len(df):
            xmax = max(xmax, float(df["epoch"].max()))
    fig.update_layout(
        title=dict(text=title, x=0.02),  # short: a phone's chart toolbar covers the rest of the line
        height=380, margin=dict(l=50, r=20, t=50, b=110), template="plotly_white",
        xaxis=dict(title="epoch", range=[0, xmax], zeroline=False),
        yaxis=dict(title=title.lower(), tickformat=".0%" if percent else None, rangemode="tozero",
                   range=[0, 1.02] if percent else None),
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0,
                    title=dict(text="Runs compared (solid: training, dotted: validation)", side="top")),
    )
    if not series:
        fig.add_annotation(text=COMPARE_HINT, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                           font=dict(color="#666"))
    return fig


def compare_figures(series) -> tuple[go.Figure, go.Figure]:
    """Loss and accuracy of several runs overlaid: `series` as for overlay_figure."""
    series = list(series)
    return (overlay_figure(series, "loss", "Loss", percent=False),
            overlay_figure(series, "accuracy", "Accuracy", percent=True))


def _short(name: str, limit: int = 14) -> str:
    name = str(name).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # plotly reads tags
    return name if len(name) <= limit else name[: limit - 1] + "…"


def confusion_figure(classes, confusion) -> go.Figure:
    """The confusion matrix as a heatmap: rows the true class, columns the predicted one, each cell's count written in it.

    Colour is the cell's share of its true class (so a small class's mistakes show as much as a big
    one's), on a scale that reads in greyscale too (light = few, dark = most); the counts are text,
    in a colour plotly picks to contrast with the cell. Sized for 2 to 20 classes.
    """
    counts = np.asarray(confusion, dtype=int)
    k = len(classes)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    labels = [_short(c) for c in classes]
    font = 13 if k <= 10 else 11 if k <= 15 else 9
    fig = go.Figure(go.Heatmap(
        z=share, x=labels, y=labels, text=counts, texttemplate="%{text}", textfont=dict(size=font),
        customdata=np.round(share * 100, 1), colorscale="Blues", zmin=0, zmax=1, xgap=1, ygap=1,
        hovertemplate="true %{y}, predicted %{x}: %{text} pictures (%{customdata}% of %{y})<extra></extra>",
        colorbar=dict(title=dict(text="share of the true class", side="right"), tickformat=".0%", thickness=12),
    ))
    side = max(260, min(640, 60 + 32 * k))
    fig.update_layout(
        title=dict(text="Confusion matrix: rows are the true class, columns what the model said", x=0.02,
                   font=dict(size=14)),
        height=side + 110, margin=dict(l=10, r=10, t=50, b=10), template="plotly_white",
        xaxis=dict(title="predicted class", side="bottom", type="category",
                   tickangle=-45 if k > 8 and max(map(len, labels)) > 2 else 0,
                   constrain="domain"),
        yaxis=dict(title="true class", type="category", autorange="reversed", scaleanchor="x", constrain="domain"),
    )
    return fig
