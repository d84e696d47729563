"""Comparing runs: what a run is called, which knobs differ between runs, and the runs board's rows.

A lesson is "change one knob, train, compare", so a run is named by what it is, never by a time
and a hex id:

- `run_name(info)`: the model, the dataset when it is not the default one, the learning rate, the
  other knobs set away from their defaults, and the validation accuracy: `small_cnn · lr 0.03 · 96.1%`.
  Absolute: deleting or adding another run never renames this one.
- `changes(info, previous)`: the knobs that differ from the student's previous run, in full
  (`learning_rate 0.003 → 0.03`): the runs board's "Changed" column.
- `legend_names(infos)`: the knobs that differ among the runs laid on one chart, short (`lr 0.03`).

Runs are read duck-typed (lab.runs.RunInfo: hparams, val_accuracy, state, created, dataset_title,
...): this module sits below lab.runs, which names its runs through it. A student's own dataset is
named by the name they gave it, never by its private id.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from lab.hparams import FIELDS, HParams, number_text

SEP = " · "
DEFAULTS = HParams()
# How a knob is written where room is short (names, legends); the others use their own name.
SHORT = {"learning_rate": "lr", "batch_size": "batch", "validation_split": "validation",
         "fine_tune_epochs": "fine-tune", "fine_tune_layers": "unfreeze"}
NAMED_ALWAYS = ("model", "dataset", "learning_rate")  # in every run's name, in their own places
MAX_EXTRA = 2  # other knobs a name lists before "+N more"
MAX_LEGEND = 3  # knobs a legend entry lists
MAX_CHANGES = 4  # changes the board's cell lists
NO_VALUE = "—"


def dataset_of(info) -> str:
    """The dataset as the student calls it: a built-in's name, or the name they gave their own."""
    return info.dataset_title or info.hparams.dataset.split("@")[0]


def value_text(value) -> str:
    """A knob's value as a student reads it (0.003, not 3e-03; on/off for switches)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return number_text(value)
    return str(value)


def knob_text(name: str, value) -> str:
    """One knob, short: `lr 0.03`, `epochs 5`, `rotation 0.1`, `flip`, `no flip`, `small_cnn`, `sgd`."""
    if name in ("model", "dataset", "optimizer"):
        return str(value)
    short = SHORT.get(name, name.removeprefix("augment_").replace("_", " "))
    if isinstance(value, bool):
        return short if value else f"no {short}"
    return f"{short} {value_text(value)}"


def _values(info) -> dict:
    """The run's knob values, its dataset by the student's name for it."""
    values = info.hparams.to_dict()
    values["dataset"] = dataset_of(info)
    return values


def differing(infos) -> list[str]:
    """The knobs (HParams field names, in FIELDS order) whose values are not all the same across `infos`
    (datasets compared by id: two of a student's datasets may share a name)."""
    values = [i.hparams.to_dict() for i in infos]
    return [f.name for f in FIELDS if len({repr(v[f.name]) for v in values}) > 1]


def _accuracy(info) -> str:
    if info.val_accuracy is None or not math.isfinite(info.val_accuracy):
        return f"{info.state} before it was measured"
    acc = f"{info.val_accuracy:.1%}"
    return acc if info.state == "done" else f"{acc}{SEP}{info.state}"


def run_name(info) -> str:
    """What the run is: `small_cnn · lr 0.03 · 96.1%` (`mlp on my webcam · lr 0.003 · epochs 5 · 81.0% · stopped`)."""
    hp = info.hparams
    head = hp.model if hp.dataset == DEFAULTS.dataset else f"{hp.model} on {dataset_of(info)}"
    extra = [knob_text(f.name, getattr(hp, f.name)) for f in FIELDS
             if f.name not in NAMED_ALWAYS and getattr(hp, f.name) != getattr(DEFAULTS, f.name)]
    if len(extra) > MAX_EXTRA:
        extra = extra[:MAX_EXTRA] + [f"+{len(extra) - MAX_EXTRA} more"]
    return SEP.join([head, knob_text("learning_rate", hp.learning_rate), *extra, _accuracy(info)])


def clock(created: float, now: float | None = None) -> str:
    """When a run was made: `14:03` today, `3 Dec 14:03` on another day."""
    then, today = time.localtime(created), time.localtime(time.time() if now is None else now)
    if then[:3] == today[:3]:
        return time.strftime("%H:%M", then)
    return f"{then.tm_mday} {time.strftime('%b %H:%M', then)}"


def unique_names(infos) -> dict[str, str]:
    """run_id -> its name; runs that would share a name also say when they were made (`… · 14:03:27`)."""
    names = {i.run_id: run_name(i) for i in infos}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {i.run_id: names[i.run_id] if counts[names[i.run_id]] == 1 else
            f"{names[i.run_id]}{SEP}{time.strftime('%H:%M:%S', time.localtime(i.created))}" for i in infos}


def changes(info, previous) -> list[str]:
    """What differs from the previous run, in full: [`learning_rate 0.003 → 0.03`]; [] for a first run."""
    if previous is None:
        return []
    new, old = _values(info), _values(previous)
    return [f"{name} {value_text(old[name])} → {value_text(new[name])}" for name in differing([previous, info])]


def legend_names(infos) -> dict[str, str]:
    """run_id -> its legend entry on a chart of these runs: the knobs that differ among them
    (`lr 0.03` vs `lr 0.003`); runs whose knobs are all the same are told apart by their time. A run
    alone on the chart is named in full."""
    if len(infos) == 1:
        return {infos[0].run_id: run_name(infos[0])}
    names = differing(infos)
    legends = {}
    for info in infos:
        values = _values(info)
        parts = [knob_text(n, values[n]) for n in names[:MAX_LEGEND]]
        if len(names) > MAX_LEGEND:
            parts.append(f"+{len(names) - MAX_LEGEND}")
        legends[info.run_id] = ", ".join(parts)
    counts: dict[str, int] = {}
    for text in legends.values():
        counts[text] = counts.get(text, 0) + 1
    for info in infos:
        if counts[legends[info.run_id]] > 1 or not legends[info.run_id]:
            at = time.strftime("%H:%M:%S", time.localtime(info.created))
            legends[info.run_id] = f"{legends[info.run_id]} ({at})" if legends[info.run_id] else f"run at {at}"
    return legends


def duration_text(seconds: float | None) -> str:
    """Training time as read on the board: `8.4 s`, `2 min 05 s`, or — when it was not recorded."""
    if seconds is None or not math.isfinite(seconds):
        return NO_VALUE
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def speed_text(images_per_second: float | None) -> str:
    if images_per_second is None or not math.isfinite(images_per_second):
        return NO_VALUE
    return f"{images_per_second:,.0f}"


def percent_text(value: float | None) -> str:
    return NO_VALUE if value is None or not math.isfinite(value) else f"{value:.1%}"


@dataclass(frozen=True)
class BoardRow:
    """One run on the runs board, as text ready to show."""

    run_id: str
    name: str
    when: str
    dataset: str
    model: str
    changed: str  # "learning_rate 0.003 → 0.03", "first run", or "same settings"
    best_val_accuracy: str
    train_time: str
    images_per_second: str
    state: str


def board_rows(infos, now: float | None = None) -> list[BoardRow]:
    """The runs board, `infos` newest first (as RunStore.list gives them): each row compared with
    the run before it."""
    names = unique_names(infos)
    rows = []
    for k, info in enumerate(infos):
        previous = infos[k + 1] if k + 1 < len(infos) else None
        diff = changes(info, previous)
        if len(diff) > MAX_CHANGES:
            diff = diff[:MAX_CHANGES] + [f"+{len(diff) - MAX_CHANGES} more"]
        changed = ", ".join(diff) if diff else ("first run" if previous is None else "same settings")
        rows.append(BoardRow(
            run_id=info.run_id, name=names[info.run_id], when=clock(info.created, now), dataset=dataset_of(info),
            model=info.hparams.model, changed=changed,
            best_val_accuracy=percent_text(getattr(info, "best_val_accuracy", None)),
            train_time=duration_text(getattr(info, "train_seconds", None)),
            images_per_second=speed_text(getattr(info, "images_per_second", None)), state=info.state,
        ))
    return rows


def run_json(info, name: str | None = None) -> dict:
    """One run as the API answers it (`/runs`): plain JSON values."""
    return {"run_id": info.run_id, "title": name or run_name(info), "created": info.created, "state": info.state,
            "hparams": info.hparams.to_dict(), "val_accuracy": info.val_accuracy,
            "best_val_accuracy": getattr(info, "best_val_accuracy", None),
            "train_seconds": getattr(info, "train_seconds", None),
            "images_per_second": getattr(info, "images_per_second", None)}
