"""Process tuning (lab/process.py): the trainer's lower CPU priority, compiled programs kept across restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from lab import process

ROOT = Path(__file__).resolve().parent.parent


def test_the_trainer_thread_and_the_framework_pools_run_at_a_lower_priority_and_the_server_does_not(monkeypatch):
    monkeypatch.delenv(process.NICE_ENV, raising=False)
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = {}

    def pool():  # stands for a framework's compute thread, named as TensorFlow names them
        seen["pool_id"] = threading.get_native_id()
        started.set()
        done.wait(10)
        seen["pool"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def trainer():
        seen["lowered"] = process.lower_priority(main_before + 5)
        seen["trainer"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    started, done = threading.Event(), threading.Event()
    framework = threading.Thread(target=pool, name="tf_pool")
    framework.start()
    started.wait(10)
    with open(f"/proc/self/task/{seen['pool_id']}/comm", "w") as f:  # the kernel's thread name, as TF sets it
        f.write("tf_Compute")
    worker = threading.Thread(target=trainer)
    worker.start()
    worker.join(10)
    done.set()
    framework.join(10)
    assert seen["lowered"] >= 2
    assert seen["trainer"] == seen["pool"] == main_before + 5
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before  # the server's threads
    monkeypatch.setenv(process.NICE_ENV, "0")  # off
    assert process.lower_priority(5) == 0


def test_compile_cache_keeps_small_programs_in_the_folder(tmp_path):
    """JAX's persistent cache in a folder beside the runs, with thresholds low enough for the lab's
    small train steps (run in a fresh process: the setting is process-wide)."""
    code = ("import os, sys; os.environ['JAX_PLATFORMS']='cpu'; from lab import backend, process; backend.configure('jax');"
            "line = process.use_compile_cache(sys.argv[1]); import jax, jax.numpy as jnp;"
            "jax.jit(lambda x: (x * 2).sum())(jnp.ones(3)).block_until_ready(); print(line)")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "compiled")], env=env, capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "restart" in out.stdout
    assert list((tmp_path / "compiled").iterdir()), "a 1 ms program was not kept"


def test_compile_cache_is_nothing_on_tensorflow(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert process.use_compile_cache(tmp_path / "compiled") == ""
    assert not (tmp_path / "compiled").exists()
