"""Several jobs at once (issue 17): JobManager slots, one worker per slot (lab.slots), with fake trainers."""

import time

import pytest

from lab.hparams import validate
from lab.jobs import JobManager
from lab.training import FitResult
from tests.test_jobs import FakeCatalog, FakeRuns, FakeRuntime, fake_train, labelled_train

class DeviceRuntime:
    """A stand-in for a Runtime pinned to one device (lab.slots.device_runtimes)."""

    replicas = 1

    def __init__(self, name):
        self.name = name

    def summary(self):
        return f"1 × fake {self.name}"


def noting_train(seen, steps=10, step_s=0.01):
    """A fake fit that notes (seed, runtime name, start, end) and trains like labelled_train."""
    inner = labelled_train([], steps=steps, step_s=step_s)

    def train(hp, runtime, log, data=None):
        started = time.perf_counter()
        result = inner(hp, runtime, log, data)
        seen.append((hp.seed, getattr(runtime, "name", "shared"), started, time.perf_counter()))
        return result

    return train


def test_two_slots_train_two_students_at_once_and_the_third_takes_the_first_free_slot():
    seen, runs = [], FakeRuns()
    devices = [DeviceRuntime("d0"), DeviceRuntime("d1")]
    jm = JobManager(runs, FakeRuntime, train=noting_train(seen, step_s=0.02), catalog=FakeCatalog(), slots=devices,
                    per_student=2)
    assert jm.slots == 2
    jm.pause(True)
    a1 = jm.submit("alice", validate({"seed": 1, "epochs": 2}))
    a2 = jm.submit("alice", validate({"seed": 2, "epochs": 1}))
    b1 = jm.submit("bob", validate({"seed": 11, "epochs": 2}))
    assert jm.order() == [a1.job_id, b1.job_id, a2.job_id]
    jm.pause(False)
    for job in (a1, b1, a2):
        assert jm.wait(job.job_id, 10).state == "done"
    by_seed = {seed: (name, start, end) for seed, name, start, end in seen}
    (da, sa, ea), (db, sb, eb), (_, s2, _) = by_seed[1], by_seed[11], by_seed[2]
    assert {da, db} == {"d0", "d1"}, "one job per device"
    assert max(sa, sb) < min(ea, eb), "alice's and bob's first jobs trained at once"
    assert s2 >= min(ea, eb), "alice's second waited for a slot"
    assert [jm.get(j.job_id).slot for j in (a1, b1)] != [None, None]
    assert sorted(r["owner"] for r in runs.saved) == ["alice", "alice", "bob"]
    assert "fake d" in jm.view(a1.job_id).progress.accelerator  # each job says which device trained it


def test_an_int_of_slots_shares_one_runtime_and_a_stop_ends_only_its_own_job():
    seen = []
    jm = JobManager(FakeRuns(), FakeRuntime, train=noting_train(seen, steps=200, step_s=0.01), catalog=FakeCatalog(),
                    slots=3)
    jobs = [jm.submit(f"s{i}", validate({"seed": i, "epochs": 1})) for i in range(3)]
    deadline = time.time() + 5
    while not all(jm.get(j.job_id).state == "running" for j in jobs) and time.time() < deadline:
        time.sleep(0.01)
    assert [jm.get(j.job_id).state for j in jobs] == ["running"] * 3 and jm.queue_length() == 0
    jm.stop(jobs[1].job_id)
    assert jm.wait(jobs[1].job_id, 5).state == "stopped"
    assert [jm.get(j.job_id).state for j in (jobs[0], jobs[2])] == ["running", "running"]
    jm.pause(True)  # the teacher's pause holds the queue, never the running jobs
    held = jm.submit("s9", validate({"seed": 9, "epochs": 1}))
    for j in (jobs[0], jobs[2]):
        assert jm.wait(j.job_id, 10).state == "done"
    assert jm.get(held.job_id).state == "queued"
    jm.stop(held.job_id)


def test_jobs_go_to_the_least_busy_device_first():
    seen = []
    d0, d1 = DeviceRuntime("d0"), DeviceRuntime("d1")
    # two slots per device, listed device by device: the first two idle workers are both d0's
    jm = JobManager(FakeRuns(), FakeRuntime, train=noting_train(seen, steps=30, step_s=0.01), catalog=FakeCatalog(),
                    slots=[d0, d0, d1, d1])
    jm.pause(True)
    jobs = [jm.submit(f"s{i}", validate({"seed": i, "epochs": 1})) for i in range(2)]
    while len(jm._idle) < 4:  # every worker has started and waits
        time.sleep(0.005)
    jm.pause(False)
    for j in jobs:
        jm.wait(j.job_id, 10)
    assert sorted(name for _, name, _, _ in seen) == ["d0", "d1"]


def test_the_time_limit_stops_each_running_job():
    jm = JobManager(FakeRuns(), FakeRuntime, train=noting_train([], steps=1000, step_s=0.01), catalog=FakeCatalog(),
                    slots=2)
    jm.job_seconds = 0.3
    jobs = [jm.submit(f"s{i}", validate({"seed": i, "epochs": 1})) for i in range(2)]
    for j in jobs:
        done = jm.wait(j.job_id, 5)
        assert done.state == "stopped" and "time limit" in done.message


def test_the_eta_with_two_slots_is_within_a_factor_of_two_of_the_wait():
    """Two jobs train at once: a queued job waits for the first slot to come free after those ahead."""
    order = []
    jm = JobManager(FakeRuns(), FakeRuntime, train=labelled_train(order, step_s=0.02), catalog=FakeCatalog(), slots=2)
    jm.wait(jm.submit("teacher", validate({"seed": 0, "epochs": 2})).job_id, 10)  # the speed, measured once
    ahead = [jm.submit(f"s{i}", validate({"seed": i, "epochs": e})) for i, e in enumerate([3, 3, 2, 2], 1)]
    last = jm.submit("s9", validate({"seed": 9, "epochs": 1}))
    view, asked = jm.view(last.job_id), time.time()
    one_slot = sum(jm.estimator.job_seconds(jm.get(j.job_id).hparams) for j in ahead[2:])
    assert view.position >= 1 and 0 < view.eta_s < one_slot + 5  # not the one-slot sum of everything ahead
    while jm.get(last.job_id).started is None:
        time.sleep(0.005)
    waited = jm.get(last.job_id).started - asked
    assert 0.5 <= waited / view.eta_s <= 2, (waited, view.eta_s)
    for j in (*ahead, last):
        jm.wait(j.job_id, 10)


def test_eta_start_in_fills_the_first_free_slot():
    from lab.eta import start_in

    assert start_in([5.0], [3.0, 4.0], 1) == 12.0  # one slot: the running job's rest, then every job ahead
    assert start_in([5.0], [3.0, 4.0], 2) == 5.0  # 3 s on the free slot, then 4 s there from 3 s; ours at 5 s
    assert start_in([], [], 2) == 0.0 and start_in([2.0], [], 2) == 0.0  # a free slot: at once
    assert start_in([6.0, 6.0], [6.0, 6.0, 6.0], 2) == 12.0


def test_jobs_starting_together_draw_the_same_random_numbers_as_alone():
    """set_random_seed and the model's and pipelines' draws are process-wide: a job's seeded start runs
    alone (lab.slots.seeded_start) until its training begins, so a seed means the same weights at once."""
    import random

    draws, training = {}, {}

    def train(hp, runtime, log, data=None):
        random.seed(hp.seed)  # as keras.utils.set_random_seed does
        first = random.random()
        time.sleep(0.05)  # building a model: another job starting now must not reseed under us
        draws[hp.seed] = (first, random.random())
        log.progress.update(phase="training", epoch=0)
        started = time.perf_counter()
        time.sleep(0.2)  # training: the other job's start runs meanwhile
        training[hp.seed] = (started, time.perf_counter())
        log.rows.append({"step": 1, "epoch": 1.0, "loss": 1.0, "accuracy": 0.5})
        return FitResult(model=object(), stopped=False, diverged=False, class_names=("a", "b"))

    jm = JobManager(FakeRuns(), FakeRuntime, train=train, catalog=FakeCatalog(), slots=2)
    jm.pause(True)
    jobs = [jm.submit(f"s{seed}", validate({"seed": seed, "epochs": 1})) for seed in (3, 4)]
    jm.pause(False)
    for j in jobs:
        assert jm.wait(j.job_id, 10).state == "done"
    for seed in (3, 4):
        alone = random.Random(seed)
        assert draws[seed] == (alone.random(), alone.random())
    (s3, e3), (s4, e4) = training[3], training[4]
    assert max(s3, s4) < min(e3, e4), "the training parts ran at once"


def test_the_warm_up_runs_once_per_device_and_says_warm_when_all_are():
    seen = []

    def train(hp, runtime, log, data=None):
        seen.append(runtime.name)
        time.sleep(0.05)
        return FitResult(model=object(), stopped=False, diverged=False, class_names=("a", "b"))

    d0, d1 = DeviceRuntime("d0"), DeviceRuntime("d1")
    jm = JobManager(FakeRuns(), FakeRuntime, train=train, catalog=FakeCatalog(), slots=[d0, d1, d0, d1])
    jm.warm_up(validate({}))
    deadline = time.time() + 5
    while not jm.warmth.startswith("warm:") and time.time() < deadline:
        time.sleep(0.01)
    assert jm.warmth.startswith("warm: mlp on digits compiled in"), jm.warmth
    assert sorted(seen) == ["d0", "d1"]


def test_slots_are_refused_when_empty_or_not_positive():
    for bad in (0, -1, []):
        with pytest.raises(ValueError):
            JobManager(FakeRuns(), FakeRuntime, train=fake_train(), catalog=FakeCatalog(), slots=bad)
