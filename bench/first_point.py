#!/usr/bin/env python
"""Time from pressing Train to the first chart point, and the default job end to end (issue 18).

For each backend, four fresh Python processes share one empty compilation-cache folder:

  1. "cold":    a fresh process, empty cache (what every first lesson after installing costs).
                It submits the default job twice: the first job of its shape, then the same job
                again in the same process ("repeat": the best a process can do).
  2. "restart": a fresh process reading the cache the first one filled (the next lesson, or the app
                restarted mid-lesson): the first job of its shape again.
  3. "restart, cache + warm-up": the same, after the start-up warm-up lab_app runs (the default job's
                programs compiled in the background before the first student presses Train).
  4. "restart, no cache": a fresh process with the cache off, for comparison.

Each job goes through lab.jobs.JobManager as a student's does (queue, load, build, compile, train,
save, evaluate); "first point" is submit -> the first metric row the page's timer would draw;
"job" is submit -> done; "start" is process start -> the runtime ready (imports and devices).
Ratios are measured in one run of this script; the machine is noisy, so compare rows of one run.

    python bench/first_point.py                      # both backends installed here, the default job
    python bench/first_point.py --backends jax --model small_cnn --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(args) -> None:
    """One fresh process: start the lab's engine, run `--jobs` jobs, print what was measured."""
    began = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from lab import backend, process

    backend.configure(args.backend)
    if args.cache:
        process.use_compile_cache(args.cache)
    rt = backend.runtime()
    started = time.perf_counter() - began
    from lab.hparams import validate
    from lab.jobs import JobManager
    from lab.runs import RunStore

    with tempfile.TemporaryDirectory() as runs_dir:
        jobs = JobManager(RunStore(runs_dir), lambda: rt)
        hp = validate({"model": args.model, "dataset": args.dataset, "epochs": args.epochs})
        firsts, totals = [], []
        if args.warm:  # as lab_app does at start-up; the student presses Train once it is warm
            jobs.warm_up(hp)
            while not jobs.warmth.startswith(("warm:", "not warmed")):
                time.sleep(0.01)
        for i in range(args.jobs):
            t0 = time.perf_counter()
            job = jobs.submit("bench", hp)
            first = None
            while True:
                view = jobs.view(job.job_id)
                if first is None and view.rows:
                    first = time.perf_counter() - t0
                if not view.active:
                    break
                time.sleep(0.005)
            if view.state != "done":
                raise SystemExit(f"job {i} ended {view.state}: {view.message}")
            firsts.append(first)
            totals.append(time.perf_counter() - t0)
    print(json.dumps({"start": started, "first": firsts, "job": totals, "device": rt.summary()}), flush=True)
    os._exit(0)  # the trainer's daemon thread may sit in XLA: skip the interpreter's teardown, which can abort there


def run_child(backend_name: str, cache: str, jobs: int, args, warm: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", "--backends", backend_name, "--jobs", str(jobs),
           "--model", args.model, "--dataset", args.dataset, "--epochs", str(args.epochs)] + (["--warm"] if warm else [])
    if cache:
        cmd += ["--cache", cache]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERAS_BACKEND", None)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{backend_name} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="tensorflow,jax")
    p.add_argument("--model", default="mlp")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--epochs", type=int, default=15, help="default 15, the lab's default job")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cache", default="", help=argparse.SUPPRESS)
    p.add_argument("--jobs", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.backend = args.backends
        return child(args)

    print(f"default job: {args.model} on {args.dataset}, {args.epochs} epochs; seconds")
    print(f"{'backend':<11} {'situation':<28} {'start':>6} {'first point':>12} {'job':>7}")
    summary = {}
    for name in args.backends.split(","):
        with tempfile.TemporaryDirectory() as cache:
            cold = run_child(name, cache, 2, args)
            warm = run_child(name, cache, 1, args)
            warmed = run_child(name, cache, 1, args, warm=True)
            plain = run_child(name, "", 1, args)
        rows = [("fresh process, empty cache", cold["start"], cold["first"][0], cold["job"][0]),
                ("same job again, same process", 0.0, cold["first"][1], cold["job"][1]),
                ("restart, cache warm", warm["start"], warm["first"][0], warm["job"][0]),
                ("restart, cache + warm-up", warmed["start"], warmed["first"][0], warmed["job"][0]),
                ("restart, no cache", plain["start"], plain["first"][0], plain["job"][0])]
        for situation, start, first, job in rows:
            print(f"{name:<11} {situation:<28} {start:>6.2f} {first:>12.2f} {job:>7.2f}")
        repeat = cold["first"][1]
        print(f"{name:<11} first point after a restart minus an in-process repeat: cache {warm['first'][0] - repeat:+.2f} s, "
              f"cache + warm-up {warmed['first'][0] - repeat:+.2f} s (target within 0.2 s); device {cold['device']}")
        summary[name] = warm["start"] + warm["job"][0]
    if len(summary) == 2:
        ratio = summary["tensorflow"] / summary["jax"]
        print(f"default job end to end after a restart (start + job): tensorflow {summary['tensorflow']:.2f} s, "
              f"jax {summary['jax']:.2f} s, tensorflow/jax = {ratio:.2f}")


if __name__ == "__main__":
    main()
