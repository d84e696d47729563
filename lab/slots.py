"""How the class's jobs share the devices, and the process they train in.

The plan (`job_plan`): one job at a time spread over every device, or one student's job per device,
and how many jobs train at once on each; lab.backend.runtime() records it on the Runtime. The
runtimes lab.jobs.JobManager's workers train on (`job_slots`, `device_runtimes`), and how the
manager reads its `slots` argument (`plan_slots`). What the workers share in one process: each
enters its runtime's `job_scope` in its own thread, and the part of a job that draws from the
global random seeds runs one job at a time (`seeded_start`).

No engine imports (lab.backend imports this): a Runtime here is whatever lab.backend passes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time

JOB_SLOTS_ENV = "VISION_LAB_JOB_SLOTS"  # auto (default), spread or device
JOBS_PER_DEVICE_ENV = "VISION_LAB_JOBS_PER_DEVICE"  # jobs training at once on each device (or on the spread); 1
JOB_MODES = ("auto", "spread", "device")
GPU_JOBS_PER_DEVICE = 2  # jobs training at once on each GPU unless VISION_LAB_JOBS_PER_DEVICE says otherwise
# Jobs are trained past their seeded start (set_random_seed, model, pipelines) once the training
# callback has begun (lab.training.MetricsCallback.on_train_begin sets these); `seeded_start` waits for it.
TRAINING_PHASES = ("training", "fine-tuning")
SEEDED_MAX_S = 60.0  # never hold the other slots longer than this for one job's seeded start
# One seeded start at a time in the whole process: Python's, NumPy's and TensorFlow's global seeds are
# process-wide, and Keras draws its initialisers' seeds from Python's (keras.random.make_default_seed).
_SEEDED = threading.Lock()


def job_plan(rt, environ=os.environ) -> tuple[str, int, str]:
    """How the class's jobs share the devices of `rt` (a lab.backend.Runtime): (mode, jobs per device, why).

    "device": one student's job per device, all at once (a TPU's cores, a box of GPUs): a class's
    jobs are small, and spread over several devices one of them mostly waits on the devices
    talking to each other. "spread": one job at a time over every device (today's data parallel;
    the only choice on one device). `auto` picks "device" for several accelerators, "spread" on
    CPUs (simulated devices share the same cores). VISION_LAB_JOBS_PER_DEVICE jobs train at once on
    each device (or on the spread): on one GPU several small jobs may together keep it busier than
    one (bench/concurrent_jobs.py measures it).
    """
    mode = (environ.get(JOB_SLOTS_ENV) or "auto").strip().lower()
    if mode not in JOB_MODES:
        raise ValueError(f"{JOB_SLOTS_ENV} must be one of {', '.join(JOB_MODES)}, not {mode!r}")
    several = rt.device_count > 1
    accelerators = rt.device_kind.lower() not in ("cpu", "")
    # A GPU runs two of a class's small jobs at once faster than one after the other: 1.25x the jobs
    # per minute on an H200, 1.26x with three (bench/concurrent_jobs.py, bench/README.md). Two keep
    # most of the gain with less memory. A TPU core and a CPU: one (2 CPU cores gain nothing).
    default = GPU_JOBS_PER_DEVICE if accelerators and "tpu" not in rt.device_kind.lower() else 1
    raw = (environ.get(JOBS_PER_DEVICE_ENV) or str(default)).strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{JOBS_PER_DEVICE_ENV} must be a whole number of jobs, 1 or more, not {raw!r}")
    per_device = int(raw)
    pinnable = not (rt.backend == "tensorflow" and rt.device_kind == "TPU")  # a TPUStrategy is all or nothing
    if mode == "auto":
        mode = "device" if several and accelerators and pinnable else "spread"
        asked = ""
    else:
        asked = f" ({JOB_SLOTS_ENV}={mode})"
        if mode == "device" and not (several and pinnable):
            mode = "spread"
            asked = f" ({JOB_SLOTS_ENV}=device, but " + ("there is one device)" if not several else
                                                         "TensorFlow's TPUStrategy cannot pin a job to one core)")
    if mode == "device":
        why = f"one job per device: {rt.device_count * per_device} students' jobs train at once{asked}"
    elif several:
        why = f"each job is spread over all {rt.device_count} devices, {per_device} at a time{asked}"
    else:
        why = f"{per_device} job{'s' if per_device > 1 else ''} at a time on the {rt.device_kind}{asked}"
    if per_device > 1:
        why += f" ({JOBS_PER_DEVICE_ENV}={per_device})"
    return mode, per_device, why


def device_runtimes(rt) -> list:
    """One Runtime per device of `rt` (lab.backend.runtime()'s), each pinned to its device
    (device_count 1: no data parallelism), for one job per device. JAX: a keras.distribution
    DataParallel over that one device (variables, data and the compiled step all live there);
    TensorFlow: the device's scope (tf.device). Either applies in the thread that trains
    (Runtime.job_scope). One device, or a TPUStrategy: [rt]."""
    if rt.device_count <= 1 or (rt.backend == "tensorflow" and rt.device_kind == "TPU"):
        return [rt]
    if rt.backend == "jax":
        import jax
        import keras

        devices = jax.devices()
        pinned = [(d, keras.distribution.DataParallel(devices=[d])) for d in devices]
    else:
        import tensorflow as tf

        logical = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        pinned = [(d.name, None) for d in logical]
    n = len(pinned)
    return [dataclasses.replace(rt, device_count=1, strategy=None, distribution=distribution, device=device,
                                device_index=i, device_count_of_machine=n, notes=list(rt.notes),
                                hints=list(rt.hints))
            for i, (device, distribution) in enumerate(pinned)]


def job_slots(rt) -> list:
    """The runtimes the JobManager's workers train on, one per job that may train at once
    (`rt`'s plan, `job_plan`): the spread runtime, or one per device; each repeated for its jobs
    per device. Slots on the same device share one Runtime object; the devices come first, so k
    jobs on an idle machine land on k different devices."""
    base = device_runtimes(rt) if rt.job_mode == "device" else [rt]
    return [r for _ in range(rt.jobs_per_device) for r in base]


def plan_slots(runtime, slots) -> list[tuple[int, object]]:
    """JobManager's `slots` as [(device key, zero-argument callable returning the slot's runtime)]."""
    if slots is None:
        slots = 1
    if isinstance(slots, int):
        if slots < 1:
            raise ValueError(f"slots must be 1 or more, not {slots}")
        return [(0, runtime)] * slots
    keys: dict[int, int] = {}
    plan = []
    for entry in slots:
        key = keys.setdefault(id(entry), len(keys))  # the same object: the same device
        plan.append((key, entry if callable(entry) else (lambda rt=entry: rt)))
    if not plan:
        raise ValueError("slots must name at least one runtime")
    return plan


def job_scope(runtime):
    """The runtime's job_scope (lab.backend.Runtime); nothing for tests' stand-ins that have none."""
    scope = getattr(runtime, "job_scope", None)
    return scope() if callable(scope) else contextlib.nullcontext()


@contextlib.contextmanager
def seeded_start(progress, shared: bool = True):
    """Around a call of the training function while other jobs may train (`shared`: several slots):
    from its start until it trains (its callback has begun: TRAINING_PHASES, or an epoch is known in
    `progress`, the job's lab.contract.Progress), no other job is in the same stretch. That stretch
    sets the global random seeds and draws from them (starting weights, shuffling, augmentation's
    seeds), so two jobs starting together neither change each other's draws nor make a seed give
    other weights than when it trains alone. Compiling and training run at once. With one slot
    (`shared` False) there is nobody to wait for."""
    if not shared:
        yield
        return
    _SEEDED.acquire()
    done = threading.Event()

    def release_once_training():
        deadline = time.monotonic() + SEEDED_MAX_S
        try:
            while not done.wait(0.005):
                if progress.phase in TRAINING_PHASES or progress.epoch is not None or time.monotonic() > deadline:
                    break
        finally:
            _SEEDED.release()

    threading.Thread(target=release_once_training, name="vision-lab-seeded", daemon=True).start()
    try:
        yield
    finally:
        done.set()


_DRAWS = threading.Lock()


@contextlib.contextmanager
def global_draws():
    """Around code that sets or draws from the process's global random state, which takes turns:
    a job seeding itself and building its model (lab.training.fit), and a page loading a saved
    model (Keras builds its layers, and each initialiser takes a seed from Python's `random`,
    though the weights then come from the file). A load in between shifted the job's draws: the
    same settings trained to other numbers when another student opened a run meanwhile. Short on
    both sides: a model's build, a model's load."""
    with _DRAWS:
        yield
