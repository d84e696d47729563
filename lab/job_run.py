"""One job in the worker that took it: from its dataset to a saved, evaluated run.

lab.jobs.JobManager decides which job trains when and on which slot; `run` is what the slot's
worker then does with it: enter the slot's runtime (lab.slots.job_scope), load the dataset (saying
so while it downloads), train with its seeded start alone while other slots train
(lab.slots.seeded_start), save the run, evaluate it, and leave the job's final state and the
message its student reads. `time_limit` stops a job when the teacher's time limit runs out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from lab import downloads, evaluation, training
from lab.hparams import HParams
from lab.slots import job_scope, seeded_start
from lab.training import DIVERGED, TrainingLog


@dataclass
class Job:
    job_id: str
    owner: str
    hparams: HParams
    state: str = "queued"  # queued, running, done, stopped, failed
    message: str = "waiting for the accelerator"
    run_id: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    log: TrainingLog = field(default_factory=TrainingLog)
    stopped_by: str = ""  # who stopped it, when not its student ("the teacher", "the time limit of 60 s")
    turn: int = 0  # its round in the round robin: the queue runs by (turn, seq)
    seq: int = 0  # the order it was submitted in
    live_measured: bool = False  # its speed has refined the ETA while it runs (JobManager._measure_live)
    slot: int | None = None  # the worker (slot) that trains it, once running


def run(job: Job, runtime, train, catalog, runs, shared: bool) -> None:
    """Train `job` and save it as a run, in the calling (worker) thread.

    runtime: a zero-argument callable returning the slot's lab.backend.Runtime; train: the training
    function (None: lab.training.fit); catalog: where the dataset is loaded from (lab.user_datasets.Catalog);
    runs: the RunStore the run is saved into; shared: other slots may train at the same time."""
    progress = job.log.progress
    progress.phase = "starting the accelerator"
    rt = runtime()
    with job_scope(rt):  # this slot's device(s) and precision, in this thread
        _train_and_save(job, rt, train or training.fit, catalog, runs, shared)


def _train_and_save(job: Job, runtime, train, catalog, runs, shared: bool) -> None:
    progress = job.log.progress
    progress.update(accelerator=runtime.summary(), phase="loading the dataset")

    def downloading(title: str, fraction: float) -> None:
        progress.update(phase=f"downloading {title} (once; later runs reuse it)", fraction=round(fraction, 3))

    with downloads.reporting(downloading):
        data = catalog.load(job.hparams.dataset, job.owner)
    progress.fraction = None
    started = time.perf_counter()
    with seeded_start(progress, shared):
        result = train(job.hparams, runtime, job.log, data=data)
    train_seconds = round(time.perf_counter() - started, 2)  # the runs board's "training time"
    if not job.log.rows:
        job.state = "failed" if result.diverged else "stopped"
        job.message = DIVERGED if result.diverged else _by(job, "stopped before the first measurement; nothing to keep")
        return
    state = "diverged" if result.diverged else "stopped" if result.stopped else "done"
    progress.phase = "saving the run"
    job.run_id = runs.save(
        owner=job.owner, hparams=job.hparams, metrics=job.log.snapshot(), model=result.model,
        class_names=result.class_names, look=data.look, state=state,
        dataset_title=catalog.title(job.hparams.dataset, job.owner),
        train_seconds=train_seconds, images_per_second=progress.images_per_sec,
    )
    # Evaluated here, on the accelerator, before the job ends: watchers of an ended job find it saved.
    verdict = evaluation.after_job(runs, job.run_id, result.model, data, job.hparams, job.log.rows, state,
                                   job.hparams.batch_size * runtime.replicas, progress)
    if result.diverged:
        job.state, job.message = "failed", f"{DIVERGED}. The last good weights were kept as a run you can try."
    elif result.stopped:
        job.state, job.message = "stopped", _by(job, "the partial run was kept: try it in the Try tab")
    else:
        job.state, job.message = "done", "saved; try it in the Try tab"
    budget = getattr(runs, "budget", None)  # lab.storage.DiskBudget: the class's storage was full
    if budget is not None and (note := budget.note(job.run_id)):
        job.message = f"{job.message.rstrip('.')}. {note}"
    job.message += verdict  # plain words when the run is near chance, measured on few pictures, or overfits
    progress.phase = job.state


def time_limit(job: Job, seconds: float | None) -> threading.Timer | None:
    """A timer that stops `job` when `seconds` (the teacher's time limit, read as the job starts) run out."""
    if not seconds:
        return None

    def time_up():
        if job.state == "running":
            job.stopped_by = f"the time limit ({seconds:g} s a job)"
            job.log.stop.set()
            job.message = "stopping: the time limit is reached…"

    timer = threading.Timer(seconds, time_up)
    timer.daemon = True
    timer.start()
    return timer


def _by(job: Job, message: str) -> str:
    """A stopped job's message, saying who stopped it when it was not its student."""
    return f"stopped by {job.stopped_by}: {message}" if job.stopped_by else message
