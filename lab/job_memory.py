"""Give back what a finished training job's graphs hold (issue 10 item 6): `job_memory()`.

TensorFlow never removes the gradient functions a traced train step registers in its process-wide
registry, and each holds its whole train graph. lab.jobs.JobManager runs every job (and warm-up)
inside `job_memory()`; several may run at once, each in a thread of its own (lab.slots), so the
registry is made to note which thread registered what.

No engine imports: TensorFlow's registry is found in sys.modules, never imported here.
"""

from __future__ import annotations

import contextlib
import sys
import threading


@contextlib.contextmanager
def job_memory():
    """Around one training job: give back what its traced graphs hold once it ends (issue 10 item 6).

    Keras' TensorFlow optimizer all-reduces the gradients through `tf.custom_gradient`, which in a
    traced train step registers a gradient function under a new name ("CustomGradient-<uid>") in
    TensorFlow's process-wide gradient registry and never removes it (tensorflow#97697, #27492).
    Its closure holds the step's tensors, hence the whole train graph: about 4.5 MB a job that
    neither the model's deletion nor `keras.backend.clear_session()` frees. Only the names this job
    registered are dropped (a finished job's graphs are never differentiated again), then the
    cycles they leave are collected at once. Compiled programs and kernel caches are left alone,
    so later jobs start as fast as before.

    Several jobs may run at once (lab.jobs slots), each in its own thread, and another job may be
    tracing its step, between registering its gradient function and using it, just as this one
    ends: so the registry notes which thread registered each name, and a job drops only its own
    thread's (`_track_registrations`). Names registered meanwhile by other threads (a
    MirroredStrategy traces each replica's step in a thread of its own) are dropped once no job is
    running; so is everything added since the first running job began where the registry cannot
    be made to note threads (TensorFlow changed).
    """
    tracked = _track_registrations()
    mine: list[str] = []
    with _JOBS_LOCK:
        global _JOBS_RUNNING, _JOBS_BEFORE
        if _JOBS_RUNNING == 0:
            _JOBS_BEFORE = set(_gradient_registry() or ())
        _JOBS_RUNNING += 1
    outer = getattr(_REGISTERED, "names", None)
    _REGISTERED.names = mine
    try:
        yield
    finally:
        _REGISTERED.names = outer
        if outer is not None:
            outer.extend(mine)  # a job inside a job (tests): the outer one drops them too
        registry = _gradient_registry()
        with _JOBS_LOCK:
            _JOBS_RUNNING -= 1
            if registry is not None:
                drop = list(mine) if tracked else []
                if _JOBS_RUNNING == 0:
                    drop += _ORPHANS if tracked else [n for n in list(registry) if n not in _JOBS_BEFORE]
                    _ORPHANS.clear()
                for name in drop:
                    if name.startswith("CustomGradient-"):
                        registry.pop(name, None)
        import gc

        gc.collect()


_JOBS_LOCK = threading.Lock()
_JOBS_RUNNING = 0  # jobs inside job_memory now
_JOBS_BEFORE: set = set()  # the registry's names when the first of the running jobs began (the fallback)
_REGISTERED = threading.local()  # .names: the gradient names this thread registered during its job
_ORPHANS: list[str] = []  # names other threads registered while jobs ran: dropped once none runs


def _track_registrations() -> bool:
    """Make TensorFlow's gradient registry note, per thread, the names registered while a job runs
    (into `_REGISTERED.names`); True once installed. Done by giving the registry object a subclass
    of its own class whose `register` also notes the name: the same object, entries and slots."""
    ops = sys.modules.get("tensorflow.python.framework.ops")
    registry = getattr(ops, "_gradient_registry", None)
    if registry is None or _gradient_registry() is None:
        return False
    if getattr(type(registry), "_vision_lab_tracked", False):
        return True
    with _JOBS_LOCK:
        if getattr(type(registry), "_vision_lab_tracked", False):
            return True
        base = type(registry)

        def register(self, candidate, name=None):
            base.register(self, candidate, name)
            names = getattr(_REGISTERED, "names", None)
            if names is not None:
                names.append(name or candidate.__name__)
            elif _JOBS_RUNNING:  # a thread a job started (a replica's), or one serving the page meanwhile
                _ORPHANS.append(name or candidate.__name__)

        try:
            tracked = type(base.__name__, (base,), {"__slots__": (), "register": register, "_vision_lab_tracked": True})
            registry.__class__ = tracked
        except TypeError:  # a layout that cannot take a subclass: the fallback
            return False
    return True


def _gradient_registry() -> dict | None:
    """TensorFlow's gradient registry (name -> entry), or None without TensorFlow or when it changed."""
    ops = sys.modules.get("tensorflow.python.framework.ops")
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None
