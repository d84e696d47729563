"""How the class's jobs share the devices (issue 17): lab.slots' job plan and slots, and Runtime.job_scope."""

from __future__ import annotations

import dataclasses

import pytest

from lab import slots
from lab.backend import Runtime


# -- how the class's jobs share the devices (issue 17) ------------------------------------------
@pytest.mark.parametrize("backend_name, kind, count, env, mode, at_once", [
    ("jax", "TPU v4", 4, {}, "device", 4),  # several accelerators: one student's job per device
    ("tensorflow", "NVIDIA H100 80GB HBM3", 2, {}, "device", 4),  # two GPUs, two jobs on each
    ("jax", "NVIDIA H200", 1, {}, "spread", 2),  # one GPU: two small jobs at once (measured 1.25x jobs/min)
    ("jax", "NVIDIA H200", 1, {"VISION_LAB_JOBS_PER_DEVICE": "1"}, "spread", 1),
    ("jax", "NVIDIA H200", 1, {"VISION_LAB_JOBS_PER_DEVICE": "3"}, "spread", 3),
    ("jax", "cpu", 2, {}, "spread", 1),  # simulated CPU devices share the cores: spread, as before
    ("tensorflow", "CPU", 1, {}, "spread", 1),
    ("jax", "cpu", 2, {"VISION_LAB_JOB_SLOTS": "device"}, "device", 2),  # asked for (the tests' way)
    ("jax", "TPU v4", 4, {"VISION_LAB_JOB_SLOTS": "spread"}, "spread", 1),
    ("jax", "TPU v4", 4, {"VISION_LAB_JOB_SLOTS": "device", "VISION_LAB_JOBS_PER_DEVICE": "2"}, "device", 8),
    ("jax", "NVIDIA H200", 1, {"VISION_LAB_JOB_SLOTS": "device"}, "spread", 2),  # one device: the same thing
    ("tensorflow", "TPU", 8, {}, "spread", 1),  # TensorFlow's TPUStrategy cannot pin a job to a core
])
def test_the_job_plan_follows_the_devices_and_the_settings(backend_name, kind, count, env, mode, at_once):
    rt = Runtime(backend_name, kind, count)
    rt.job_mode, rt.jobs_per_device, why = slots.job_plan(rt, env)
    assert (rt.job_mode, rt.jobs_at_once) == (mode, at_once), why
    assert why and ("one job per device" in rt.summary()) == (mode == "device" and count > 1)
    assert rt.describe()["jobs_at_once"] == at_once and rt.describe()["job_mode"] == mode
    assert rt.describe()["replicas"] == (1 if mode == "device" else count)  # what one job is spread over


@pytest.mark.parametrize("env", [{"VISION_LAB_JOB_SLOTS": "all"}, {"VISION_LAB_JOBS_PER_DEVICE": "0"},
                                 {"VISION_LAB_JOBS_PER_DEVICE": "two"}])
def test_a_wrong_job_setting_is_a_clear_error(env):
    with pytest.raises(ValueError, match="VISION_LAB_JOB"):
        slots.job_plan(Runtime("jax", "cpu", 1), env)


def test_job_slots_repeat_each_device_for_its_jobs_devices_first(monkeypatch):
    one = Runtime("jax", "NVIDIA H200", 1, jobs_per_device=3)
    assert slots.job_slots(one) == [one, one, one]  # three jobs at once on the one GPU, sharing its runtime
    many = Runtime("jax", "TPU v4", 2, job_mode="device", jobs_per_device=2)
    pinned = [dataclasses.replace(many, device_count=1, device_index=i, device_count_of_machine=2) for i in range(2)]
    monkeypatch.setattr(slots, "device_runtimes", lambda rt=None: pinned)
    plan = slots.job_slots(many)
    assert [s.device_index for s in plan] == [0, 1, 0, 1] and plan[0] is plan[2]
    assert pinned[1].summary().startswith("TPU v4 (device 2 of 2) · Keras jax backend")  # the job's status line


def test_a_single_device_runtime_is_its_own_device_runtime():
    rt = Runtime("tensorflow", "CPU", 1)
    assert slots.device_runtimes(rt) == [rt]


def test_job_scope_sets_the_policy_in_the_calling_thread_only():
    """Keras keeps its dtype policy (and distribution) per thread: a worker thread must set its own."""
    import threading

    import keras

    main = keras.mixed_precision.global_policy().name
    seen = {}

    def worker():
        with Runtime(keras.backend.backend(), "CPU", 1, policy="mixed_bfloat16").job_scope():
            seen["inside"] = keras.mixed_precision.global_policy().name
            seen["another thread meanwhile"] = other_thread_policy()
        seen["after"] = keras.mixed_precision.global_policy().name

    def other_thread_policy():
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("p", keras.mixed_precision.global_policy().name))
        t.start()
        t.join()
        return out["p"]

    t = threading.Thread(target=worker)
    t.start()
    t.join(30)
    assert seen == {"inside": "mixed_bfloat16", "another thread meanwhile": "float32", "after": "float32"}
    assert keras.mixed_precision.global_policy().name == main


def test_a_model_a_page_loads_while_a_job_seeds_itself_leaves_the_jobs_weights_alone(tmp_path):
    """Loading a saved model builds its layers, and each initialiser takes a seed from Python's random:
    a student opening a run's evaluation while another's job set its seed made the same settings
    train to other numbers (seen with three students pressing Train at once)."""
    import threading

    import keras
    import numpy as np

    from lab.hparams import validate
    from lab.images import ImageLook
    from lab.runs import RunStore

    store = RunStore(tmp_path / "runs")
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    run_id = store.save(owner="ann", hparams=validate({}), metrics=[{"step": 1, "epoch": 1.0, "loss": 1.0}],
                        model=model, class_names=tuple("abcd"), look=ImageLook(8, 8, 1), state="done")

    def start_weights():
        keras.utils.set_random_seed(7)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).get_weights()[0]

    alone = start_weights()
    seeded, loaded = threading.Event(), threading.Event()
    got = {}

    def job():  # as lab.training.fit seeds itself and builds its model
        with slots.global_draws():
            keras.utils.set_random_seed(7)
            seeded.set()
            loaded.wait(0.5)  # a page's load, were it let in now, would land here
            got["weights"] = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).get_weights()[0]

    def page():
        seeded.wait(10)
        store.load(run_id)  # a student opens the run (the Try tab, its evaluation)
        loaded.set()

    threads = [threading.Thread(target=job), threading.Thread(target=page)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert loaded.is_set() and np.array_equal(got["weights"], alone)
