"""Pure plotly builders: metric rows (or a DataFrame) in, figure out. No Gradio, no state."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

TRAIN_COLOUR = "#2563eb"
VAL_COLOUR = "#ea580c"


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


def accuracy_figure(rows, epochs: int | None = None, fine_tune_from: int | None = None) -> go.Figure:
    """Training and validation accuracy on the same epoch axis as the loss chart."""
    return _figure(metrics_frame(rows), "accuracy", "Accuracy", epochs, percent=True, fine_tune_from=fine_tune_from)


def class_counts_figure(counts: dict[str, int]) -> go.Figure:
    """A bar per class: how many images each class has."""
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), marker_color=TRAIN_COLOUR))
    fig.update_layout(title="Images per class", height=260, margin=dict(l=40, r=20, t=40, b=40),
                      template="plotly_white", xaxis=dict(type="category"))
    return fig
