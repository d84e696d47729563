"""JobManager: the single owner of the accelerator.

One worker thread per slot trains one job at a time: one slot by default; on a machine of several
accelerators one per device (lab.slots.job_slots: each student's job on a device of its own, all
at once), and VISION_LAB_JOBS_PER_DEVICE slots per device where several small jobs keep a device
busier than one. Jobs queue round robin between students (each job gets
a turn: a student's next job waits for everyone else's current one, and a student new to the queue
joins the round under way, behind those already in it), with at most `per_student` queued or
running jobs per student and at most `max_queue` waiting for the whole class, so nobody can hog the
class's accelerator. Each queued job has a place and an ETA (lab.eta: the jobs ahead at the speeds
this machine was measured at, the running job's remaining part included). Watchers read snapshots without taking the training
thread's time. The teacher (lab.classroom) may pause the queue, limit a job's time, stop any job,
and add `rules` every submitted job must pass (the class's locks). Every request a student makes
passes its `owner`: another student's job gets exactly the answer a missing one gets.

With several slots, what is process-wide is shared with care: each worker enters its runtime's
`job_scope` (Keras keeps its dtype policy and distribution per thread), lab.job_memory.job_memory drops
only its own thread's gradient functions, and the part of a job that draws from the global random
seeds (set_random_seed, building the model and the input pipelines) runs one job at a time
(lab.slots.seeded_start), so a seed gives the same starting weights and shuffle as when the job trains alone.

JobManager decides which job trains when, and on which slot; what the worker then does with it (the
dataset, training, saving and evaluating the run, the student's message) is lab.job_run's.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
import traceback

from lab import job_memory, job_run, process
from lab.contract import ACTIVE, JobView
from lab.datasets import DatasetError
from lab.eta import Estimator, start_in
from lab.hparams import HParams
from lab.job_run import Job
from lab.pipeline import TrainingError
from lab.slots import job_scope, plan_slots, seeded_start
from lab.training import TrainingLog

log = logging.getLogger(__name__)
MAX_QUEUE = 100  # jobs waiting at once for the whole class (a lecture hall); the teacher can raise it
PER_STUDENT = 1  # queued or running jobs per student (the page shows one job; a script may be allowed more)
TRAINER_NICE = 10  # the trainer thread's lower priority: the web server answers while the cores train


class JobError(ValueError):
    """A job request was refused; the message says why."""


class JobManager:
    """Queue, run, stop and report training jobs.

    Args:
        runs: the RunStore that finished jobs are saved into.
        runtime: a zero-argument callable returning the lab.backend.Runtime (called in the worker,
            so the app starts before the accelerator is initialised).
        train: the training function (lab.training.fit); tests pass a fake.
        catalog: where datasets are looked up by name (lab.user_datasets.Catalog: the built-in
            ones and the students' own); by default only the built-in ones.
        max_queue: jobs that may wait at once (the class's queue); more are refused.
        per_student: queued or running jobs one student may have at once.
        keep_finished: ended jobs remembered (their views); the oldest are forgotten beyond it.
        nice: how much lower the trainer thread's priority is than the web server's (Linux; 0 = same).
        slots: how many jobs train at once, and on what. None or 1: one worker on `runtime()`; an
            int k: k workers sharing `runtime()` (k jobs at once on the same devices); a list: one
            worker per entry, each a lab.backend.Runtime or a zero-argument callable returning one
            (lab.slots.job_slots(): one per device, times the jobs per device). Entries that are
            the same object share a device: an idle machine puts jobs on its least busy device first.
    """

    def __init__(self, runs, runtime, train=None, keep_finished: int = 500, catalog=None, max_queue: int = MAX_QUEUE,
                 per_student: int = PER_STUDENT, nice: int = TRAINER_NICE, slots=None):
        from lab.user_datasets import Catalog

        self.runs = runs
        self._runtime = runtime
        self._train = train
        self.catalog = catalog or Catalog()
        self._jobs: dict[str, Job] = {}
        self._queue: list[str] = []  # queued job ids, kept sorted by (turn, seq): the order they will run in
        self._seq = 0
        self._turn = 0  # the turn of the job that started last
        self._last_turn: dict[str, int] = {}  # owner -> the turn of their newest job (only while >= _turn)
        self._slots = plan_slots(runtime, slots)  # [(device key, zero-argument callable -> runtime)]
        self._running: dict[int, Job] = {}  # slot -> the job it trains
        self._busy: dict[int, int] = {}  # device key -> jobs training there
        self._idle: dict[int, int] = {}  # slot -> its device key, while the slot's worker waits for work
        self.estimator = Estimator()  # how long jobs take here (the queue's ETA)
        self.per_student = per_student
        self._nice = nice
        self._cv = threading.Condition()
        self._keep = keep_finished
        self.max_queue = max_queue
        self.paused = False  # the teacher paused the queue: queued jobs wait, a running one goes on
        self.job_seconds: float | None = None  # the teacher's time limit per job (None: no limit)
        self.rules = None  # (owner, hparams) -> None, raising JobError: lab.classroom's locks
        self._warm: dict[int, HParams] = {}  # device key -> a warm-up an idle worker there runs (warm_up)
        self._warming = 0  # warm-ups under way
        self.warmth = ""  # what the warm-up did, for the accelerator panel ("" = none asked for)
        self._workers = [threading.Thread(target=self._work, args=(slot,), daemon=True,
                                          name="vision-lab-trainer" + (f"-{slot}" if len(self._slots) > 1 else ""))
                         for slot in range(len(self._slots))]
        for worker in self._workers:
            worker.start()

    @property
    def slots(self) -> int:
        """How many jobs train at once."""
        return len(self._slots)

    # -- requests ---------------------------------------------------------
    def submit(self, owner: str, hparams: HParams) -> Job:
        """Queue a job for `owner` in its round-robin turn; refuse while that owner has `per_student`
        queued or running, when the class's queue is full, when the dataset is someone else's (or
        gone), or when the class's `rules` refuse it."""
        if self.rules is not None:
            self.rules(owner, hparams)
        try:
            self.catalog.check(hparams.dataset, owner)
        except DatasetError as e:
            raise JobError(str(e)) from None
        with self._cv:
            mine = [job for job in self._jobs.values() if job.owner == owner and job.state in ACTIVE]
            if len(mine) >= self.per_student:
                if self.per_student == 1:
                    raise JobError(f"you already have a job {mine[0].state}: stop it or wait for it to finish")
                raise JobError(f"you already have {len(mine)} jobs queued or running (at most {self.per_student}): "
                               "stop one or wait for one to finish")
            if len(self._queue) >= self.max_queue:
                raise JobError(f"the class's queue is full ({self.max_queue} jobs waiting): try again in a minute")
            # Round robin: the student's next turn, but never one already past (a newcomer joins this round).
            turn = max(self._turn, self._last_turn.get(owner, -1) + 1)
            self._seq += 1
            job = Job(secrets.token_urlsafe(9), owner, hparams, turn=turn, seq=self._seq)
            self._last_turn[owner] = turn
            self._jobs[job.job_id] = job
            self._queue.append(job.job_id)
            self._queue.sort(key=lambda k: (self._jobs[k].turn, self._jobs[k].seq))
            self._forget_old()
            self._cv.notify_all()
        return job

    def stop(self, job_id: str, owner: str | None = None, by: str = "") -> Job:
        """Stop a job: a queued one leaves the queue, a running one stops after its current step.

        `by`: who stopped it when not its student (the teacher), said in its message."""
        with self._cv:
            job = self.get(job_id, owner)
            if job.state in ACTIVE and by:
                job.stopped_by = by
            if job.state == "queued":
                self._queue.remove(job_id)
                job.state, job.finished = "stopped", time.time()
                job.message = f"stopped by {by} before it started" if by else "stopped before it started"
                self._cv.notify_all()
            elif job.state == "running":
                job.log.stop.set()
                job.message = "stopping…"
        return job

    def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job; with `owner`, only when it is theirs (else the same JobError as a missing one).

        `owner=None` is for trusted callers (the worker, scripts, tests)."""
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None or (owner is not None and job.owner != owner):
            shown = job_id if isinstance(job_id, str) and len(job_id) <= 64 else "(that id)"
            raise JobError(f"no job of yours called {shown!r} (jobs are forgotten when the app restarts; runs are kept)")
        return job

    def stop_all(self, by: str = "") -> list[str]:
        """Stop every queued and running job (the teacher's button); returns their ids."""
        with self._cv:
            ids = [j.job_id for j in self._jobs.values() if j.state in ACTIVE]
            for job_id in ids:
                self.stop(job_id, by=by)
        return ids

    def pause(self, paused: bool) -> None:
        """Hold the queue (queued jobs wait; a running job goes on) or let it run again."""
        with self._cv:
            self.paused = bool(paused)
            self._cv.notify_all()

    def latest_views(self) -> dict[str, JobView]:
        """owner -> a view of their newest job (trusted callers: the teacher's board)."""
        with self._cv:
            newest: dict[str, Job] = {}
            for job in self._jobs.values():
                if job.owner not in newest or job.created > newest[job.owner].created:
                    newest[job.owner] = job
        return {owner: self.view(job.job_id) for owner, job in newest.items()}

    def queue_length(self) -> int:
        with self._cv:
            return len(self._queue)

    def forget_ended(self) -> int:
        """Forget every job that has ended (the teacher cleared the class); returns how many."""
        with self._cv:
            ended = [k for k, j in self._jobs.items() if j.state not in ACTIVE]
            for k in ended:
                del self._jobs[k]
        return len(ended)

    def latest_for(self, owner: str) -> Job | None:
        with self._cv:
            mine = [j for j in self._jobs.values() if j.owner == owner]
        return max(mine, key=lambda j: j.created) if mine else None

    def position(self, job_id: str) -> int:
        """1-based place in the queue, 0 when not queued."""
        with self._cv:
            return self._queue.index(job_id) + 1 if job_id in self._queue else 0

    def order(self) -> list[str]:
        """The queued jobs' ids in the order they will run (trusted callers: tests, the teacher)."""
        with self._cv:
            return list(self._queue)

    def eta(self, job_id: str) -> float | None:
        """Seconds until a queued job starts (the running jobs' rest, then every job ahead, on the
        first slot to come free: lab.eta.start_in), or until a running one ends; None once it has
        ended or while the queue is paused. An estimate (lab.eta), refined as jobs run."""
        with self._cv:
            job = self._jobs.get(job_id)
            if job is None or job.state not in ACTIVE or (self.paused and job.state == "queued"):
                return None  # ended, or held by the teacher's pause: no honest estimate
            running = [j for j in self._running.values() if j.state == "running"]
            ahead = [self._jobs[k].hparams for k in self._queue[: self._queue.index(job_id)]] \
                if job.state == "queued" else []
        if job.state == "running":
            running = [job]
        left = []
        for other in running:
            self._measure_live(other)
            left.append(self.estimator.remaining(other.hparams, other.log.progress,
                                                 time.time() - (other.started or time.time())))
        if job.state == "running":
            return round(left[0], 1)
        return round(start_in(left, [self.estimator.job_seconds(hp) for hp in ahead], len(self._slots)), 1)

    def view(self, job_id: str, owner: str | None = None) -> JobView:
        """A typed copy of the job (lab.contract.JobView) that the caller may keep and render."""
        job = self.get(job_id, owner)
        with self._cv:
            position = self._queue.index(job_id) + 1 if job_id in self._queue else 0
            queue_length = len(self._queue)
        return JobView(job_id=job.job_id, state=job.state, message=job.message, run_id=job.run_id,
                       position=position, queue_length=queue_length, progress=job.log.progress.copy(),
                       rows=job.log.snapshot(), hparams=job.hparams, eta_s=self.eta(job_id))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job has ended (tests and scripts)."""
        deadline = None if timeout is None else time.time() + timeout
        with self._cv:
            while self.get(job_id).state in ACTIVE:
                left = None if deadline is None else deadline - time.time()
                if left is not None and left <= 0:
                    break
                self._cv.wait(left)
        return self.get(job_id)

    # -- the workers (one per slot) --------------------------------------
    def _work(self, slot: int) -> None:
        key, runtime = self._slots[slot]
        process.lower_priority(self._nice)  # before the job's framework threads exist: they inherit it
        while True:
            with self._cv:
                self._idle[slot] = key
                while not self._takes_job(key) and key not in self._warm:
                    self._cv.wait()
                del self._idle[slot]
                if not self._takes_job(key):  # idle: compile what the next jobs will need
                    warm = self._warm.pop(key)
                    self._warming += 1
                    job = None
                else:  # taken off the queue and marked running at once: stop() never sees it in between
                    job = self._jobs[self._queue.pop(0)]
                    job.state, job.started, job.message, job.slot = "running", time.time(), "starting", slot
                    self._running[slot], self._turn = job, job.turn
                    self._busy[key] = self._busy.get(key, 0) + 1
                    self._last_turn = {k: t for k, t in self._last_turn.items() if t >= self._turn}  # bounded
                    self._cv.notify_all()
            if job is None:
                self._warm_up(warm, runtime)
                continue
            limit = job_run.time_limit(job, self.job_seconds)
            process.lower_priority(self._nice)  # pools the framework started since the last job too
            try:
                with job_memory.job_memory():  # the job's graphs are freed when it ends (issue 10 item 6)
                    job_run.run(job, runtime, self._train, self.catalog, self.runs, shared=len(self._slots) > 1)
            except Exception as e:  # a failed job must never take the worker down
                log.error("job %s failed:\n%s", job.job_id, traceback.format_exc())
                job.state, job.message = "failed", _plain(e)
            finally:
                if limit is not None:
                    limit.cancel()
            with self._cv:
                job.finished = time.time()
                del self._running[slot]
                self._busy[key] -= 1
                self._cv.notify_all()
            self._measured(job)

    def _takes_job(self, key: int) -> bool:
        """Whether an idle worker on device `key` should take the next queued job now (under the
        lock): one is waiting, the queue is not paused, and no idle worker has a less busy device."""
        if not self._queue or self.paused:
            return False
        mine = self._busy.get(key, 0)
        return all(mine <= self._busy.get(other, 0) for other in self._idle.values())

    def _job_waiting(self) -> bool:
        """A queued job that no idle worker is about to take (under the lock): a warm-up gives way."""
        return bool(self._queue) and not self.paused and len(self._queue) > len(self._idle)

    # -- warming up -------------------------------------------------------
    def warm_up(self, hparams: HParams) -> None:
        """Compile `hparams`' programs when the workers are idle (issue 18): at start-up the default
        job's, later the teacher's preset; once on each device (compiled programs are kept per device).
        A student's job that arrives meanwhile is never held longer than the compilation already under
        way, which it would have paid itself: the warm-up stops at its next step and the job reuses
        what was compiled (JAX keeps compiled programs by their shape, in memory and in the
        compilation cache beside the runs)."""
        with self._cv:
            self._warm = {key: hparams for key, _ in self._slots}
            self.warmth = f"warming up: compiling {hparams.model} on {hparams.dataset}"
            self._cv.notify_all()

    def _warm_up(self, hp: HParams, runtime) -> None:
        """One epoch of `hp` on its dataset, thrown away; stops as soon as a job is waiting."""
        from lab import training

        started = time.perf_counter()
        warm_log = TrainingLog()
        waiting = threading.Event()

        def watch():  # the warm-up gives way to the first queued job no idle worker takes
            with self._cv:
                while not self._job_waiting() and not waiting.is_set():
                    self._cv.wait(0.5)
            warm_log.stop.set()

        watcher = threading.Thread(target=watch, name="vision-lab-warm-up-watch", daemon=True)
        watcher.start()
        what = ""
        try:
            with job_memory.job_memory():
                data = self.catalog.load(hp.dataset, None)
                one_epoch = dataclasses.replace(hp, epochs=1, fine_tune_epochs=0)
                rt = runtime()
                with job_scope(rt), seeded_start(warm_log.progress, shared=len(self._slots) > 1):
                    (self._train or training.fit)(one_epoch, rt, warm_log, data=data)
            p = warm_log.progress  # the machine's speed for the default job: the first ETAs' measure
            if p.images_per_sec and p.steps_per_epoch:
                self.estimator.record(hp, p.images_per_sec, p.steps_per_epoch * hp.batch_size * (p.replicas or 1))
            what = "stopped early: a job came in" if warm_log.stop.is_set() and not waiting.is_set() else \
                f"compiled in {time.perf_counter() - started:.1f} s"
        except Exception as e:  # noqa: BLE001 - a failed warm-up costs only the speed it would have bought
            log.warning("warm-up failed:\n%s", traceback.format_exc())
            self.warmth = f"not warmed up ({_plain(e)}); the first job compiles its own programs"
        finally:
            waiting.set()
            with self._cv:
                self._warming -= 1
                if what and not self._warming and not self._warm:  # the last device's warm-up says it
                    self.warmth = f"warm: {hp.model} on {hp.dataset} {what}"
                self._cv.notify_all()

    def _measure_live(self, job: Job) -> None:
        """Once a running job has measured its speed, the queue's ETAs use it at once (before it ends):
        the first job of a lesson corrects the priors for everyone queued behind it."""
        p = job.log.progress
        if not job.live_measured and p.images_per_sec and p.steps_per_epoch and (p.epoch or 0) >= 1:
            job.live_measured = True
            self.estimator.record(job.hparams, p.images_per_sec, p.steps_per_epoch * job.hparams.batch_size * (p.replicas or 1))

    def _measured(self, job: Job) -> None:
        """Refine the ETA's speeds from a job that trained (a stopped one tells its speed, not its length)."""
        p = job.log.progress
        if not job.log.rows or p.epoch is None or not job.started:
            return
        images = p.steps_per_epoch * job.hparams.batch_size * (p.replicas or 1) if p.steps_per_epoch else None
        whole = job.state == "done"
        self.estimator.record(job.hparams, p.images_per_sec, images,
                              wall_s=(job.finished - job.started) if whole else None, epochs=p.epoch if whole else None)

    def _forget_old(self) -> None:
        ended = [j for j in self._jobs.values() if j.state not in ACTIVE]
        for j in sorted(ended, key=lambda j: j.created)[: max(0, len(ended) - self._keep)]:
            del self._jobs[j.job_id]


def _plain(e: Exception) -> str:
    # The lab's own errors, and download failures (datasets, ImageNet weights), are written for people.
    if isinstance(e, (TrainingError, JobError, RuntimeError, DatasetError)) and str(e):
        return str(e)
    return f"training failed: {type(e).__name__}: {e}"
