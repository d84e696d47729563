"""JobManager: one worker, fair queue, stop, typed views, failures that never kill the worker."""

import threading
import time
from types import SimpleNamespace

import pytest

from lab.hparams import validate
from lab.jobs import JobError, JobManager
from lab.training import FitResult, TrainingError


class FakeRuns:
    def __init__(self):
        self.saved = []

    def save(self, **kw):
        self.saved.append(kw)
        return f"run{len(self.saved)}"


class FakeRuntime:
    replicas = 1

    def summary(self):
        return "1 × fake"


def fake_train(rows=5, delay=0.02, fail=None, diverge_after=None):
    """A stand-in for lab.training.fit that writes rows like the real callback."""
    started = threading.Event()

    def train(hp, runtime, log, data=None):
        started.set()
        if fail:
            raise fail
        for i in range(rows):
            if log.stop.is_set():
                break
            if diverge_after is not None and i >= diverge_after:
                log.diverged = True
                break
            log.rows.append({"step": i + 1, "epoch": (i + 1) / rows, "loss": 1.0 / (i + 1), "accuracy": i / rows})
            time.sleep(delay)
        return FitResult(model=object(), stopped=log.stop.is_set(), diverged=log.diverged, class_names=("a", "b"))

    train.started = started
    return train


class FakeCatalog:
    """Datasets by name without reading any: every name exists, and its look is "look"."""

    def load(self, name, owner=None):
        return SimpleNamespace(look="look", class_names=("a", "b"))

    def check(self, name, owner):
        pass

    def title(self, name, owner=None):
        return name


def manager(train, runs=None):
    jm = JobManager(runs or FakeRuns(), FakeRuntime, train=train, catalog=FakeCatalog())
    return jm


def test_a_job_runs_to_done_and_is_saved():
    runs = FakeRuns()
    jm = manager(fake_train(), runs)
    job = jm.submit("alice", validate())
    assert jm.wait(job.job_id, 10).state == "done"
    view = jm.view(job.job_id)
    assert view.run_id == "run1" and len(view.rows) == 5 and view.state == "done" and "Try tab" in view.message
    assert view.to_json()["metrics"] == view.rows and view.to_json()["hparams"] == view.hparams.to_dict()
    assert runs.saved[0]["owner"] == "alice" and runs.saved[0]["state"] == "done"


def test_one_active_job_per_student_and_queue_places():
    jm = manager(fake_train(rows=50, delay=0.05))
    a = jm.submit("alice", validate())
    b = jm.submit("bob", validate())
    c = jm.submit("carol", validate())
    with pytest.raises(JobError, match="already have a job"):
        jm.submit("alice", validate())
    deadline = time.time() + 5
    while jm.get(a.job_id).state != "running" and time.time() < deadline:
        time.sleep(0.01)
    assert (jm.position(b.job_id), jm.position(c.job_id)) == (1, 2)
    assert jm.view(c.job_id).state == "queued"
    for j in (a, b, c):
        jm.stop(j.job_id)
    assert jm.wait(a.job_id, 5).state == "stopped"


def test_stopping_a_queued_job_removes_it_and_frees_the_student():
    jm = manager(fake_train(rows=100, delay=0.05))
    first = jm.submit("alice", validate())
    queued = jm.submit("bob", validate())
    assert jm.stop(queued.job_id).state == "stopped" and jm.position(queued.job_id) == 0
    jm.submit("bob", validate())  # allowed again
    jm.stop(first.job_id)


def test_stop_keeps_the_partial_run():
    runs = FakeRuns()
    train = fake_train(rows=1000, delay=0.01)
    jm = manager(train, runs)
    job = jm.submit("alice", validate())
    while not jm.get(job.job_id).log.rows:
        time.sleep(0.01)
    t = time.time()
    jm.stop(job.job_id)
    done = jm.wait(job.job_id, 5)
    assert time.time() - t < 2
    assert done.state == "stopped" and done.run_id == "run1" and runs.saved[0]["state"] == "stopped"


def test_failures_are_reported_and_the_worker_survives():
    trainers = iter([fake_train(fail=TrainingError("batch size too big")), fake_train()])
    jm = manager(lambda *args, **kwargs: next(trainers)(*args, **kwargs))  # fails once, then trains
    bad = jm.submit("alice", validate())
    assert jm.wait(bad.job_id, 5).state == "failed"
    assert jm.get(bad.job_id).message == "batch size too big"
    ok = jm.submit("alice", validate())
    assert jm.wait(ok.job_id, 5).state == "done"


def test_divergence_fails_with_a_plain_message_but_keeps_the_good_part():
    runs = FakeRuns()
    jm = manager(fake_train(rows=10, diverge_after=3), runs)
    job = jm.submit("alice", validate())
    done = jm.wait(job.job_id, 5)
    assert done.state == "failed" and "lower learning rate" in done.message
    assert runs.saved[0]["state"] == "diverged"


def test_snapshots_are_copies_readable_while_training():
    jm = manager(fake_train(rows=200, delay=0.005))
    job = jm.submit("alice", validate())
    seen = []
    while jm.get(job.job_id).state in ("queued", "running"):
        view = jm.view(job.job_id)
        view.rows.clear()  # a watcher mangling its copy must not touch the job
        view.progress.phase = "mangled"
        seen.append(len(jm.view(job.job_id).rows))
        time.sleep(0.01)
    assert seen == sorted(seen) and len(jm.view(job.job_id).rows) == 200
    assert jm.view(job.job_id).progress.phase != "mangled"


def test_unknown_job_ids_are_refused_plainly():
    jm = manager(fake_train())
    for bad in ("nope", "", None, 42):
        with pytest.raises(JobError, match="no job"):
            jm.get(bad)


def test_jobs_of_another_student_are_refused_like_missing_ones():
    train = fake_train(rows=1000, delay=0.05)
    jm = manager(train)
    job = jm.submit("alice", validate({}))
    assert train.started.wait(5)
    for call in (lambda: jm.view(job.job_id, "bob"), lambda: jm.stop(job.job_id, "bob"),
                 lambda: jm.get(job.job_id, "bob")):
        with pytest.raises(JobError) as theirs:
            call()
        with pytest.raises(JobError) as missing:
            jm.view("no-such-job", "bob")
        assert str(theirs.value).replace(job.job_id, "ID") == str(missing.value).replace("no-such-job", "ID")
    assert jm.get(job.job_id).state == "running", "bob's stop must not stop alice's job"
    assert jm.view(job.job_id, "alice").job_id == job.job_id
    jm.stop(job.job_id, "alice")
    assert jm.wait(job.job_id, 5).state == "stopped"


def test_the_class_queue_has_a_maximum():
    train = fake_train(rows=1000, delay=0.05)
    jm = manager(train)
    jm.max_queue = 2
    first = jm.submit("s0", validate({}))
    assert train.started.wait(5), "the worker took the first job"
    jm.submit("s1", validate({}))
    second = jm.submit("s2", validate({}))
    with pytest.raises(JobError, match="queue is full"):
        jm.submit("s3", validate({}))
    assert jm.position(second.job_id) == 2
    jm.stop(second.job_id)
    jm.submit("s3", validate({}))  # a place came free
    jm.stop(first.job_id)



def test_a_real_job_leaves_no_train_graph_behind(runtime, tmp_path):
    """Issue 10 item 6: Keras' TensorFlow optimizer all-reduces its gradients through tf.custom_gradient,
    which registers a gradient function in TensorFlow's process-wide registry for every traced train step;
    its closure holds the whole train graph (about 4.5 MB a job, forever). The worker drops what its job added."""
    import weakref

    from lab import job_memory, training
    from lab.runs import RunStore

    registry = job_memory._gradient_registry()
    before = set(registry)
    held = []  # weak references to the gradient functions the job registered: they hold its graphs

    def train(hp, rt, log, data=None):
        result = training.fit(hp, rt, log, data=data)
        held.extend(weakref.ref(registry[n]["type"]) for n in list(registry) if n not in before)
        return result

    jm = JobManager(RunStore(tmp_path / "runs"), lambda: runtime, train=train)
    job = jm.submit("alice", validate(epochs=1))
    deadline = time.time() + 120
    while jm.get(job.job_id).finished is None and time.time() < deadline:  # finished: after the release
        time.sleep(0.05)
    assert jm.get(job.job_id).state == "done", jm.get(job.job_id).message
    assert [n for n in registry if n not in before and n.startswith("CustomGradient-")] == []
    assert [r for r in held if r() is not None] == [], "the job's gradient functions (and graphs) are still alive"


def test_job_memory_drops_only_its_own_threads_gradient_functions_when_jobs_overlap():
    """Two jobs at once (two slots): the first to end must not drop what the other registered, which
    that one may be about to use (a gradient function is looked up while its step is traced)."""
    import tensorflow as tf

    from lab import job_memory

    registry = job_memory._gradient_registry()
    a_in, b_registered, a_done = threading.Event(), threading.Event(), threading.Event()
    names = {}

    def register(label):
        names[label] = f"CustomGradient-test-{label}-{time.monotonic_ns()}"
        tf.RegisterGradient(names[label])(lambda op, grad: grad)

    def job_a():  # starts first, ends first
        with job_memory.job_memory():
            a_in.set()
            b_registered.wait(5)
            register("a")
        a_done.set()

    def job_b():  # starts while a runs, registers, and is still tracing when a ends
        a_in.wait(5)
        with job_memory.job_memory():
            register("b")
            b_registered.set()
            a_done.wait(5)
            names["b kept after a ended"] = names["b"] in registry

    threads = [threading.Thread(target=job_a), threading.Thread(target=job_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert names["b kept after a ended"], "the other job's gradient function was dropped under it"
    assert names["a"] not in registry and names["b"] not in registry, "each job dropped its own when it ended"


# -- the start-up warm-up (issue 18) -------------------------------------------------------
def test_warm_up_trains_one_epoch_when_idle_and_saves_nothing():
    seen = []

    def train(hp, runtime, log, data=None):
        seen.append((hp.epochs, hp.model, hp.fine_tune_epochs))
        return FitResult(model=object(), stopped=False, diverged=False, class_names=("a", "b"))

    runs = FakeRuns()
    jm = manager(train, runs)
    jm.warm_up(validate({"model": "mobilenet_v3_small", "epochs": 30, "fine_tune_epochs": 3}))
    deadline = time.time() + 5
    while not jm.warmth.startswith("warm:") and time.time() < deadline:
        time.sleep(0.01)
    assert jm.warmth.startswith("warm: mobilenet_v3_small on digits compiled in"), jm.warmth
    assert seen == [(1, "mobilenet_v3_small", 0)]  # one epoch, no fine-tuning: only the programs matter
    assert runs.saved == [] and jm.queue_length() == 0


def test_warm_up_gives_way_to_a_student_at_its_next_step():
    steps = []

    def train(hp, runtime, log, data=None):
        if hp.epochs == 1 and not steps:  # the warm-up: a long epoch, stopped from outside
            for i in range(500):
                if log.stop.is_set():
                    break
                steps.append(i)
                time.sleep(0.01)
            return FitResult(model=object(), stopped=True, diverged=False, class_names=("a", "b"))
        log.rows.append({"step": 1, "epoch": 1.0, "loss": 1.0, "accuracy": 0.5})
        return FitResult(model=object(), stopped=False, diverged=False, class_names=("a", "b"))

    jm = manager(train)
    jm.warm_up(validate({}))
    while not steps:
        time.sleep(0.005)
    t0 = time.time()
    job = jm.submit("alice", validate({"epochs": 2}))
    assert jm.wait(job.job_id, timeout=10).state == "done"
    assert time.time() - t0 < 2 and len(steps) < 200  # it did not wait for the 5 s warm-up
    assert "stopped early" in jm.warmth


def test_a_failed_warm_up_says_so_and_the_worker_goes_on():
    jm = manager(fake_train(fail=TrainingError("no such dataset here")))
    jm.warm_up(validate({}))
    deadline = time.time() + 5
    while not jm.warmth.startswith("not warmed") and time.time() < deadline:
        time.sleep(0.01)
    assert "no such dataset here" in jm.warmth and "first job compiles" in jm.warmth
    jm._train = fake_train()
    job = jm.submit("bob", validate({}))
    assert jm.wait(job.job_id, timeout=10).state == "done"


def labelled_train(order, gate=None, steps=10, step_s=0.0):
    """A fake fit that notes each job's seed (its label) as it starts, optionally waits for `gate`,
    then trains `epochs` × `steps` steps of `step_s` seconds, writing progress like the real callback."""

    def train(hp, runtime, log, data=None):
        order.append(hp.seed)
        if gate is not None:
            gate.wait(10)
        p = log.progress
        p.update(phase="training", epoch=0, step=0, steps_per_epoch=steps, replicas=1)
        t0 = time.perf_counter()
        for i in range(hp.epochs * steps):
            if log.stop.is_set():
                break
            time.sleep(step_s)
            p.update(epoch=(i + 1) / steps, step=i + 1,
                     images_per_sec=round((i + 1) * hp.batch_size / max(time.perf_counter() - t0, 1e-9), 1))
            log.rows.append({"step": i + 1, "epoch": (i + 1) / steps, "loss": 1.0, "accuracy": 0.5})
        return FitResult(model=object(), stopped=log.stop.is_set(), diverged=False, class_names=("a", "b"))

    return train


def test_the_queue_is_round_robin_between_students_not_first_come_first_served():
    order = []
    jm = JobManager(FakeRuns(), FakeRuntime, train=labelled_train(order, steps=1), catalog=FakeCatalog(), per_student=3)
    jm.pause(True)
    ids = {}
    for owner, label in [("alice", 1), ("alice", 2), ("alice", 3), ("bob", 11), ("bob", 12), ("carol", 21)]:
        ids[label] = jm.submit(owner, validate({"seed": label, "epochs": 1})).job_id
    with pytest.raises(JobError, match="at most 3"):
        jm.submit("alice", validate())
    # first come, first served would be 1 2 3 11 12 21: alice's three before anyone else's
    expected = [1, 11, 21, 2, 12, 3]
    assert jm.order() == [ids[k] for k in expected]
    assert [jm.view(ids[k]).position for k in expected] == [1, 2, 3, 4, 5, 6]
    assert jm.view(ids[3]).eta_s is None, "a paused queue promises no time"
    jm.pause(False)
    for k in expected:
        jm.wait(ids[k], 10)
    assert order == expected


def test_a_newcomer_joins_the_round_under_way_before_a_students_second_turn():
    order, gate = [], threading.Event()
    jm = JobManager(FakeRuns(), FakeRuntime, train=labelled_train(order, gate, steps=1), catalog=FakeCatalog(),
                    per_student=2)
    first = jm.submit("alice", validate({"seed": 1, "epochs": 1}))
    while not order:
        time.sleep(0.01)  # alice's first job is running (held by the gate)
    a2 = jm.submit("alice", validate({"seed": 2, "epochs": 1}))
    b1 = jm.submit("bob", validate({"seed": 11, "epochs": 1}))  # came later, but has had no turn yet
    assert jm.order() == [b1.job_id, a2.job_id]
    gate.set()
    for j in (first, a2, b1):
        jm.wait(j.job_id, 10)
    assert order == [1, 11, 2]
    assert len(jm._last_turn) <= 2  # the round robin's memory is pruned as turns pass


def test_the_eta_of_a_queued_job_is_within_a_factor_of_two_of_its_wait():
    """Jobs of different lengths (2, 4 and 1 epochs of 10 steps of 20 ms) ahead of the measured one."""
    order = []
    jm = JobManager(FakeRuns(), FakeRuntime, train=labelled_train(order, step_s=0.02), catalog=FakeCatalog())
    calibration = jm.submit("teacher", validate({"seed": 0, "epochs": 2}))
    assert jm.view(calibration.job_id).eta_s is not None  # running or about to: its own remaining time
    jm.wait(calibration.job_id, 10)  # the machine's speed is measured once
    assert jm.view(calibration.job_id).eta_s is None
    jobs = [jm.submit(f"s{i}", validate({"seed": i, "epochs": e})) for i, e in enumerate([2, 4, 1], 1)]
    last = jm.submit("s4", validate({"seed": 4, "epochs": 1}))
    view = jm.view(last.job_id)
    asked = time.time()
    assert view.position >= 3 and view.eta_s > 0 and view.to_json()["eta_s"] == view.eta_s
    jm.wait(jobs[-1].job_id, 20)
    while jm.get(last.job_id).started is None:
        time.sleep(0.005)
    waited = jm.get(last.job_id).started - asked
    assert 0.5 <= waited / view.eta_s <= 2, (waited, view.eta_s)
    jm.wait(last.job_id, 10)


def test_ended_jobs_are_forgotten_beyond_keep_finished():
    jm = JobManager(FakeRuns(), FakeRuntime, train=fake_train(rows=1, delay=0), catalog=FakeCatalog(), keep_finished=3)
    for i in range(6):
        jm.wait(jm.submit(f"student{i}", validate()).job_id, 10)
    jm.submit("last", validate())
    assert len(jm._jobs) <= 4  # 3 ended, and the one just queued
