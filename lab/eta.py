"""How long jobs take here: the queue's honest ETA ("3rd in line, about 40 s").

A job's time is its set-up (loading the dataset, compiling, evaluating, saving) plus its epochs ×
the images of one epoch at the images per second this machine has been measured at. Speeds are
kept per (model, dataset), per model family (the model alone) and for the machine as a whole, the
most specific one known winning; every finished job refines them (a moving average), and so does
the start-up warm-up. Before anything was measured, modest priors make the first estimates.

With several jobs training at once (lab.jobs slots), a queued job starts when the first slot comes
free after the jobs ahead of it have each taken the first free slot in turn (`start_in`): about the
jobs ahead divided by the slots. Speeds measured while jobs share a device are those of shared jobs,
so the estimate stays honest when several train on one GPU.

Part of the engine: no gradio, no keras, no other lab module (it reads HParams fields by name).
"""

from __future__ import annotations

import heapq
import threading

# Before anything was measured: the default job (mlp, digits) on 2 shared CPU cores, where a class
# queues at the start of a lesson (bench/classroom_load.py: 2-3 s a job, of which 0.7-1 s training at
# 20,000-45,000 images/s); a faster machine corrects them after a job, or after the start-up warm-up.
PRIOR_IMAGES_PER_SEC = 20000.0
PRIOR_IMAGES = 1500  # training images of one epoch of a dataset not seen yet (digits: 1,437)
PRIOR_SETUP_S = 1.5  # loading, compiling, evaluating, saving
WEIGHT = 0.5  # of a new measurement in the moving average: recent jobs count most (load changes)
MAX_KEYS = 500  # speeds remembered (models × datasets): students' own datasets come and go


class Estimator:
    """Seconds a job will take, from what jobs like it took on this machine; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._speed: dict[tuple, float] = {}  # (model, dataset) / (model,) / () -> images per second
        self._images: dict[str, float] = {}  # dataset -> training images per epoch
        self._setup: dict[tuple, float] = {}  # (model, dataset) / () -> seconds outside the epochs

    @staticmethod
    def _keys(hp) -> list[tuple]:
        return [(hp.model, hp.dataset), (hp.model,), ()]

    def _average(self, table: dict, key, value: float) -> None:
        old = table.get(key)
        table[key] = value if old is None else (1 - WEIGHT) * old + WEIGHT * value
        if len(table) > MAX_KEYS:  # the oldest entry goes (dicts keep insertion order)
            del table[next(k for k in table if k not in ((), key))]

    def record(self, hp, images_per_sec: float | None, images_per_epoch: float | None,
               wall_s: float | None = None, epochs: float | None = None) -> None:
        """What a job (or the warm-up, without `wall_s`) measured: its speed, its epoch's size, and
        from its whole time (`wall_s` for `epochs` epochs) the set-up around the epochs."""
        with self._lock:
            if images_per_epoch and images_per_epoch > 0:
                self._average(self._images, hp.dataset, float(images_per_epoch))
            if images_per_sec and images_per_sec > 0:
                for key in self._keys(hp):
                    self._average(self._speed, key, float(images_per_sec))
            if wall_s is not None and epochs:
                images = self._images.get(hp.dataset, PRIOR_IMAGES)
                speed = self._lookup(self._speed, hp, PRIOR_IMAGES_PER_SEC)
                setup = max(0.0, wall_s - epochs * images / speed)
                for key in ((hp.model, hp.dataset), ()):
                    self._average(self._setup, key, setup)

    def _lookup(self, table: dict, hp, prior: float) -> float:
        for key in self._keys(hp):
            if key in table:
                return table[key]
        return prior

    def epoch_seconds(self, hp) -> float:
        """One epoch of `hp`'s dataset at its model's measured speed."""
        with self._lock:
            images = self._images.get(hp.dataset, PRIOR_IMAGES)
            return images / self._lookup(self._speed, hp, PRIOR_IMAGES_PER_SEC)

    def job_seconds(self, hp) -> float:
        """The whole of a job that has not started: set-up, then every epoch (fine-tuning included)."""
        with self._lock:
            setup = self._setup.get((hp.model, hp.dataset), self._setup.get((), PRIOR_SETUP_S))
        return setup + hp.total_epochs * self.epoch_seconds(hp)

    def remaining(self, hp, progress, elapsed: float) -> float:
        """What is left of a running job, `elapsed` seconds after it started (`progress`: its
        lab.contract.Progress). Training: the epochs left at the speed it is training at now;
        preparing: the estimate less the time already spent (never below a second)."""
        whole = self.job_seconds(hp)
        if progress.epoch is None:
            return max(1.0, whole - elapsed)
        per_epoch = self.epoch_seconds(hp)
        if progress.images_per_sec and progress.steps_per_epoch:
            per_epoch = progress.steps_per_epoch * hp.batch_size * (progress.replicas or 1) / progress.images_per_sec
        left = max(0.0, hp.total_epochs - progress.epoch) * per_epoch
        with self._lock:  # the set-up's share after the epochs (evaluating, saving): a third, roughly
            tail = self._setup.get((hp.model, hp.dataset), self._setup.get((), PRIOR_SETUP_S)) / 3
        return max(0.5, left + tail)


def start_in(running_left: list[float], ahead: list[float], slots: int = 1) -> float:
    """Seconds until a queued job starts, with `slots` jobs training at once: the running jobs end
    after `running_left` seconds (the other slots are free now), and each job `ahead` of it, in
    queue order, takes the first slot to come free for its `ahead` seconds. One slot: the running
    job's rest plus every job ahead."""
    slots = max(1, slots)
    free = sorted(max(0.0, s) for s in running_left)[:slots]
    free += [0.0] * (slots - len(free))
    heapq.heapify(free)
    for seconds in ahead:
        heapq.heapreplace(free, free[0] + max(0.0, seconds))
    return free[0]
