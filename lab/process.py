"""Tuning the lab's process: the trainer's CPU priority, and compiled programs kept across restarts.

- `lower_priority`: the trainer thread (and the framework's compute pools) run at a lower CPU
  priority, so the web server answers a class's polls while the cores train (issue 17).
- `use_compile_cache`: JAX's persistent compilation cache beside the runs, so a restarted lab's
  first jobs start without compiling again (issue 18).

Part of the engine: no gradio, no engine imports; JAX is imported only when it is the backend.
"""

from __future__ import annotations

import contextlib
import os
import threading

FRAMEWORK_THREADS = ("tf_", "llvm-worker", "XLA", "xla")  # names of TensorFlow's, XLA's and LLVM's pool threads
NICE_ENV = "VISION_LAB_TRAINER_NICE"  # overrides the trainer's lower priority (0 turns it off)


def lower_priority(nice: int, framework_threads: bool = True) -> int:
    """Lower the calling thread's CPU priority by `nice` (Linux: a thread's nice value is its own, and
    threads it starts inherit it); with `framework_threads`, also the compute pools TensorFlow and XLA
    started, by their thread names (they were made wherever the framework first ran, often the main
    thread). The web server's threads keep their priority, so a page's poll is answered at once while
    training uses the cores. Returns how many threads were lowered; 0 where not supported.

    Measured in bench/classroom_load.py (status p95 with 30 students on 2 cores; bench/README.md)."""
    nice = int(os.environ.get(NICE_ENV, nice))
    if nice <= 0 or not hasattr(os, "setpriority") or not os.path.isdir("/proc/self/task"):
        return 0
    targets = {threading.get_native_id()}
    if framework_threads:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    if f.read().startswith(FRAMEWORK_THREADS):
                        targets.add(int(tid))
            except OSError:  # the thread ended meanwhile
                continue
    lowered = 0
    for tid in targets:
        try:
            current = os.getpriority(os.PRIO_PROCESS, tid)
            if current < nice:  # only ever lower (raising back needs privileges)
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            lowered += 1
        except OSError:
            continue
    return lowered


COMPILE_CACHE_MB = 512  # the persistent compilation cache's size on disk; the least recently used go first


def use_compile_cache(folder: str | os.PathLike | None) -> str:
    """Keep compiled programs in `folder`, so a restarted lab starts its first jobs fast (issue 18).

    JAX: its persistent compilation cache, with the thresholds lowered so that the lab's small
    programs (a train step compiles in well under JAX's default 1 s minimum) are kept too, bounded
    to COMPILE_CACHE_MB. Put it beside the runs, so Drive keeps it in Colab and a Space's /data
    keeps it. Set before the first compilation; a later call changes nothing.
    TensorFlow: nothing to keep across processes (Keras builds a train function per model and
    traces it in well under a second on the default job), so this returns "" there.
    Returns a line for the accelerator panel.
    """
    if folder is None or os.environ.get("KERAS_BACKEND") != "jax":  # lab.backend.configure sets it
        return ""
    import jax

    path = os.fspath(folder)
    os.makedirs(path, exist_ok=True)
    if jax.config.values.get("jax_compilation_cache_dir") not in (None, path):
        return f"compiled programs are kept in {jax.config.values['jax_compilation_cache_dir']}"
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    with contextlib.suppress(AttributeError, KeyError, ValueError):  # older JAX: no size bound
        jax.config.update("jax_compilation_cache_max_size", COMPILE_CACHE_MB * 2**20)
    return "compiled programs are kept beside the runs, so the first jobs after a restart start fast"
