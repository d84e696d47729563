"""The engine ↔ page contract: what anyone watching a training job reads.

The page's timer, the `/job_status` endpoint and (later) the teacher's board all read one typed
`JobView` of a job, never the engine's internals or a string-keyed dict:

- `Progress`: what a running job is doing now. The worker (lab.jobs), the training callback
  (lab.training) and the feature cache (lab.features) write it; it has slots, so setting a name
  that is not a field raises, and a writer and a reader cannot drift apart on a key.
- `JobView`: a copy of one job at one moment (state, place in the queue and ETA, progress, metric rows,
  the `HParams` object itself, the saved run's id); `to_json()` is the API's answer.
- `Board`, `StudentRow`, `Limits`: the teacher's board as lab.classroom gives it to the Class tab and
  `/class_board`.

Part of the engine's lowest layer: no gradio, no keras, no other lab module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

ACTIVE = ("queued", "running")  # a job in one of these states may still change


@dataclass(slots=True)  # slots: assigning a misspelt field raises instead of adding it
class Progress:
    """What a running job is doing now; None (or "") means not known yet."""

    phase: str = ""  # "loading the dataset", "training", "fine-tuning", "computing backbone features", ...
    epoch: float | None = None  # epochs done, fractional (1.5 = half-way through the second)
    step: int | None = None  # optimizer steps done
    steps_per_epoch: int | None = None
    images_per_sec: float | None = None  # training speed, measured over the current epoch
    accelerator: str = ""  # "1 × CPU · Keras tensorflow backend"
    replicas: int | None = None
    fraction: float | None = None  # of a download or of the backbone features, 0..1, while preparing
    note: str = ""  # a remark for the student ("batch size lowered from 64 to 20: ...")
    input: str = ""  # where the batches come from: "on the device" (lab.feed) or "streamed from the host"

    def update(self, **values: Any) -> None:
        """Set fields by name; an unknown name is a programming error (AttributeError)."""
        names = {f.name for f in dataclasses.fields(self)}
        for name, value in values.items():
            if name not in names:
                raise AttributeError(f"Progress has no field {name!r}")
            setattr(self, name, value)

    def copy(self) -> Progress:
        return dataclasses.replace(self)

    def to_json(self) -> dict:
        """The fields that are known, as plain JSON values."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != ""}


@dataclass(frozen=True)
class JobView:
    """One job at one moment, for a watcher to keep and render."""

    job_id: str
    state: str  # queued, running, done, stopped, failed
    message: str
    run_id: str | None  # the saved run, once there is one
    position: int  # 1-based place in the queue; 0 when not queued
    queue_length: int
    progress: Progress
    hparams: Any  # lab.hparams.HParams (not imported: this module stays at the bottom)
    rows: list[dict] = field(default_factory=list)  # metric rows: step, epoch, loss, accuracy[, val_*]
    eta_s: float | None = None  # queued: seconds until it starts; running: until it ends (lab.eta); else None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def total_epochs(self) -> int:
        return self.hparams.total_epochs

    @property
    def val_accuracy(self) -> float | None:
        """The last validation accuracy measured, if any."""
        val = [r["val_accuracy"] for r in self.rows if r.get("val_accuracy") is not None]
        return val[-1] if val else None

    def to_json(self) -> dict:
        """The API's answer (`/job_status`): plain JSON, with the metric rows as "metrics"."""
        return {
            "job_id": self.job_id, "state": self.state, "message": self.message, "run_id": self.run_id,
            "position": self.position, "queue_length": self.queue_length, "eta_s": self.eta_s,
            "progress": self.progress.to_json(),
            "metrics": [dict(r) for r in self.rows], "hparams": self.hparams.to_dict(),
        }


@dataclass(frozen=True)
class Limits:
    job_seconds: float | None = None  # a job is stopped after this long (None: no limit)
    queue_max: int | None = None  # jobs that may wait at once (None: the app's default)

    def to_json(self) -> dict:
        return {"job_seconds": self.job_seconds, "queue_max": self.queue_max}


@dataclass(frozen=True)
class StudentRow:
    """One line of the teacher's board."""

    student: str  # the display name
    state: str  # queued, running, done, stopped, failed; "" before their first job
    epoch: float | None
    val_accuracy: float | None
    best_val_accuracy: float | None
    run_id: str | None  # their best run (the one project mode shows)
    job_id: str | None  # their newest job
    rows: list = field(default_factory=list)  # the newest job's metric rows (the small curve)
    best_title: str = ""  # what the best run is (`small_cnn · lr 0.03 · 96.1%`)

    def to_json(self) -> dict:
        return {"student": self.student, "state": self.state, "epoch": self.epoch, "val_accuracy": self.val_accuracy,
                "best_val_accuracy": self.best_val_accuracy, "run_id": self.run_id, "job_id": self.job_id}


@dataclass(frozen=True)
class Board:
    students: list[StudentRow]
    queue_length: int
    paused: bool
    locks: dict[str, Any]  # field -> lab.classroom.Lock (its to_json() is what the API sends)
    limits: Limits

    def to_json(self) -> dict:
        return {"students": [s.to_json() for s in self.students], "queue_length": self.queue_length,
                "paused": self.paused, "locks": {k: v.to_json() for k, v in self.locks.items()},
                "limits": self.limits.to_json()}
