"""The runs endpoints (gr.api): /runs, /run_metrics, /delete_run: only the caller's runs.

Identity as for every endpoint (components/api.py): one gradio_client Client is one student.
Another student's run id gets exactly the answer a missing one gets (lab.runs.not_found).
"""

from __future__ import annotations

import math
from typing import Callable

import gradio as gr

from lab import compare
from lab.runs import RunNotFound

from components.services import Services, refused

METRIC_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")


def _plain(value):
    """A metrics cell as JSON: a number, or None where nothing was measured (NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def register_runs_api(services: Services, owner_of: Callable[[gr.Request | None], str]) -> None:
    """Declare /runs, /run_metrics and /delete_run inside the current gr.Blocks.

    `owner_of`: request -> the caller's identity ("api-" + its session), as components/api.py has it.
    """

    def runs(request: gr.Request = None) -> list:
        """Your runs, newest first: run_id, title (what it is: `small_cnn · lr 0.03 · 96.1%`), created,
        state, hparams, val_accuracy (the last), best_val_accuracy, train_seconds, images_per_second
        (the last two None for runs saved before they were recorded)."""
        infos = services.runs.list(owner_of(request))
        names = compare.unique_names(infos)
        return [compare.run_json(i, names[i.run_id]) for i in infos]

    def run_metrics(run_id: str, request: gr.Request = None) -> dict:
        """One of your runs' curves: {run_id, metrics: [{epoch, loss, accuracy, val_loss, val_accuracy}]}
        (val_* are None between epochs, where validation was not measured)."""
        try:
            df = services.runs.metrics(run_id, owner_of(request))
        except RunNotFound as e:
            raise refused(str(e)) from None
        columns = [k for k in METRIC_KEYS if k in df]
        rows = [{k: None for k in METRIC_KEYS} | {k: _plain(v) for k, v in zip(columns, values)}
                for values in df[columns].itertuples(index=False)]
        return {"run_id": run_id, "metrics": rows}

    def delete_run(run_id: str, request: gr.Request = None) -> dict:
        """Delete one of your runs (its curves and model): {deleted: run_id}."""
        try:
            services.runs.delete(run_id, owner_of(request))
        except RunNotFound as e:
            raise refused(str(e)) from None
        return {"deleted": run_id}

    for fn in (runs, run_metrics, delete_run):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
