#!/usr/bin/env python
"""Do several small jobs at once on one device raise the class's jobs per minute? (issue 17)

The same N students' jobs (each start to saved and evaluated run, as a Train press runs them,
through lab.jobs.JobManager) are run with 1, 2 and 3 jobs training at once on one device
(JobManager slots sharing one runtime, what VISION_LAB_JOBS_PER_DEVICE sets in the app), one
setting after another in this one process. Printed: the wall time of the N jobs, jobs per minute,
the ratio against one at a time, and the mean job's time and training speed.

    python bench/concurrent_jobs.py                               # 6 small_cnn jobs on digits, 3 epochs
    python bench/concurrent_jobs.py --backend jax --jobs 4 --epochs 2   # a quick look on 2 CPU cores
    python bench/concurrent_jobs.py --backend jax --synthetic 10000 --batch-size 64   # CIFAR-sized, on a GPU
    python bench/concurrent_jobs.py --gpu          # the same: the GPU preset (bench/gpu_run.sh); meant to take ~1 min there (not yet measured)

A first job, not timed, compiles the programs (kept in a compilation cache in a temporary folder, as
the app keeps them beside the runs): every timed job then starts as a class's jobs do after the warm-up.
`--at-once 1 2 3 1` measures 1 again at the end (drift). The last line is `RESULT {json}`.
On a machine of several devices the jobs use the first device only (the question is per device).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


GPU_SYNTHETIC, GPU_BATCH = 10000, 64  # --gpu: digits' 8x8 images are too small to load a GPU
WORTH = 1.15  # jobs per minute against one at a time worth a setting: below it, noise and memory risk outweigh it


class BenchCatalog:
    """Every job's dataset is `data` (digits, or synthetic CIFAR-sized images): a lab.user_datasets.Catalog stand-in."""

    def __init__(self, data):
        self.data = data

    def load(self, name, owner=None):
        return self.data

    def check(self, name, owner):
        pass

    def title(self, name, owner=None):
        return ""


def synthetic(n: int):
    """N random uint8 32x32x3 images in 10 balanced classes, shaped like CIFAR-10 (bench/gpu_bench.py's)."""
    import numpy as np

    from lab import datasets
    from lab.images import ImageLook

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    y = (np.arange(n) % 10).astype(np.int64)
    return datasets.Dataset("digits", x, y, tuple(f"c{i}" for i in range(10)), ImageLook(32, 32, 3))


def run_jobs(runs, runtime, catalog, hparams, n: int, at_once: int, timeout: float) -> dict:
    """N students' jobs through a JobManager with `at_once` slots on `runtime`; their wall time and speeds."""
    import dataclasses

    from lab.jobs import JobManager

    jm = JobManager(runs, lambda: runtime, catalog=catalog, slots=at_once, max_queue=max(100, n))
    t = time.perf_counter()
    jobs = [jm.submit(f"student{i}", dataclasses.replace(hparams, seed=hparams.seed + i)) for i in range(n)]
    ended = [jm.wait(j.job_id, timeout) for j in jobs]
    wall = time.perf_counter() - t
    bad = [f"{j.state}: {j.message}" for j in ended if j.state != "done"]
    if bad:
        raise SystemExit(f"{len(bad)} of {n} jobs did not finish at {at_once} at once: {bad[:3]}")
    infos = [runs.info(j.run_id) for j in ended]
    return {
        "at_once": at_once,
        "wall_s": round(wall, 2),
        "jobs_per_min": round(60 * n / wall, 2),
        "job_s": round(statistics.mean(j.finished - j.started for j in ended), 2),
        "train_s": round(statistics.mean(i.train_seconds for i in infos), 2),
        "images_per_s_per_job": round(statistics.mean(i.images_per_second or 0 for i in infos), 1),
        "val_accuracy": round(statistics.mean(i.val_accuracy or 0 for i in infos), 4),
        "accuracies": [i.val_accuracy for i in infos],  # by student (seed): the same at any setting when seeds hold
        "overlap": round(sum(j.finished - j.started for j in ended) / wall, 2),  # mean jobs training at a time
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu", action="store_true",
                   help=f"the GPU preset: JAX, {GPU_SYNTHETIC} CIFAR-sized images, batch {GPU_BATCH} (flags given win)")
    p.add_argument("--backend", default=None, help="auto (default), jax or tensorflow (lab.backend.configure)")
    p.add_argument("--jobs", type=int, default=6, help="students' jobs per setting (default 6)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--batch-size", type=int, default=None, help="default 32 (the lab's); --gpu: 64")
    p.add_argument("--synthetic", type=int, default=None, help="N random 32x32x3 images instead of the digits (0 = digits)")
    p.add_argument("--at-once", type=int, nargs="+", default=[1, 2, 3], help="jobs at once to compare (default 1 2 3)")
    p.add_argument("--timeout", type=float, default=600, help="seconds one job may take at most")
    args = p.parse_args(argv)
    args.backend = args.backend or ("jax" if args.gpu else "auto")
    args.synthetic = args.synthetic if args.synthetic is not None else (GPU_SYNTHETIC if args.gpu else 0)
    args.batch_size = args.batch_size or (GPU_BATCH if args.gpu else 32)

    if args.jobs < 2 * max(args.at_once):
        print(f"note: {args.jobs} jobs for up to {max(args.at_once)} at once: the last jobs of each setting run with "
              "slots idle; 2 × the most at once or more measures the steady state", flush=True)

    t0 = time.perf_counter()
    from lab import backend, process, slots

    backend.configure(args.backend)
    rt = backend.runtime()
    device = slots.device_runtimes(rt)[0]  # one device: the question is what one device does with k jobs
    if args.gpu and device.device_kind.lower() in ("cpu", ""):
        print(f"warning: --gpu, but training runs on the {device.device_kind}: these are CPU figures", flush=True)

    from lab import datasets
    from lab.hparams import validate
    from lab.runs import RunStore

    data = synthetic(args.synthetic) if args.synthetic else datasets.load("digits")
    hp = validate({"model": args.model, "epochs": args.epochs, "batch_size": args.batch_size})
    catalog = BenchCatalog(data)
    n_train = len(datasets.split(data, hp.validation_split, hp.seed)[0])
    what = "synthetic 32x32x3" if args.synthetic else "digits"
    print(f"concurrent_jobs: {args.jobs} × {hp.model} on {what} ({n_train} training images), {hp.epochs} epochs, "
          f"batch {hp.batch_size}; {device.summary()}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        process.use_compile_cache(Path(tmp) / "compiled")
        runs = RunStore(Path(tmp) / "runs")
        t = time.perf_counter()
        run_jobs(runs, device, catalog, hp, 1, 1, args.timeout)  # compiles; not timed
        print(f"first job (compiling, not counted): {time.perf_counter() - t:.1f} s", flush=True)
        results = []
        for k in args.at_once:
            results.append(run_jobs(runs, device, catalog, hp, args.jobs, k, args.timeout))
            r = results[-1]
            print(f"  {k} at once: {r['wall_s']} s for {args.jobs} jobs", flush=True)

    base = next((r for r in results if r["at_once"] == 1), results[0])
    print()
    print("| at once | wall s | jobs/min | vs 1 at a time | job s (mean) | train s (mean) | img/s per job | val acc |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        r["ratio"] = round(r["jobs_per_min"] / base["jobs_per_min"], 2)
        print(f"| {r['at_once']} | {r['wall_s']} | {r['jobs_per_min']} | {r['ratio']:.2f}× | {r['job_s']} | "
              f"{r['train_s']} | {r['images_per_s_per_job']} | {r['val_accuracy']} |")
    drift = max(abs(a - b) for r in results for a, b in zip(r["accuracies"], base["accuracies"]))
    print(f"\nlargest change of a student's validation accuracy against one at a time: {drift:.4f} "
          "(0 on a CPU: a seed gives the same run alone or beside others; a GPU's own nondeterminism may move it)")
    best = max(results, key=lambda r: r["jobs_per_min"])
    worth = best["at_once"] > 1 and best["ratio"] >= WORTH
    print(f"most jobs per minute at {best['at_once']} at once ({best['ratio']:.2f}× one at a time): " +
          (f"VISION_LAB_JOBS_PER_DEVICE={best['at_once']} for this device and job size, if a second run agrees"
           if worth else f"keep one at a time (a gain under {WORTH:.2f}× is within this benchmark's noise)"))
    print("RESULT " + json.dumps({"device": device.summary(), "backend": rt.backend, "model": hp.model, "data": what,
                                  "images": n_train, "epochs": hp.epochs, "batch_size": hp.batch_size,
                                  "jobs": args.jobs, "results": results, "accuracy_drift": drift,
                                  "total_s": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
