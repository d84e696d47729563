#!/usr/bin/env python
"""Soak: many short training jobs and predictions through the API; the server's memory must stay flat.

Launches `python lab_app.py --port P --runs-dir D` (a temporary runs folder) and drives it with
gradio_client, as a class's scripts would. --students Clients (one identity each: the API allows one
active job per identity) train in turn: each submits a short job, polls /job_status until it ends,
then makes its share of the predictions on its new run and on random older runs of its own (so the
RunStore's cache of 8 loaded models keeps loading and dropping models), while the others' jobs train.

The server's resident memory (VmRSS of its process) is read at start (app up, nothing run), after the
warm-up jobs (first traces, caches filled) and at the end. Target: growth from warm-up to the end
under --target-mb (50 MB). Exit status 0 when met, 1 when missed or when a request failed.

    python bench/soak.py                                # 300 jobs, 2,000 predictions (8-25 min on 2 shared cores)
    python bench/soak.py --jobs 60 --predictions 400    # a quick look
    python bench/soak.py --without-release --jobs 100   # the server without lab.job_memory.job_memory: the leak

Not run in CI: it is long.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "sample_data" / "examples").glob("*.png"))
# --without-release: the app exactly as lab_app.py starts it, with the per-job release turned into a no-op.
WITHOUT_RELEASE = ("import contextlib, runpy, sys; import lab.job_memory as m; m.job_memory = contextlib.nullcontext; "
                   "sys.argv[0] = 'lab_app.py'; runpy.run_path('lab_app.py', run_name='__main__')")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=300, help="training jobs in all (default 300)")
    p.add_argument("--predictions", type=int, default=2000, help="/predict calls in all (default 2000)")
    p.add_argument("--students", type=int, default=4, help="gradio_client Clients taking turns (default 4)")
    p.add_argument("--warmup-jobs", type=int, default=30, help="jobs before the warm-up reading (default 30)")
    p.add_argument("--model", default="mlp", help="model of every job (default mlp)")
    p.add_argument("--dataset", default="digits", help="dataset of every job (default digits)")
    p.add_argument("--epochs", type=int, default=1, help="epochs per job (default 1)")
    p.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax", "auto"), help="the app's --backend")
    p.add_argument("--target-mb", type=float, default=50.0, help="allowed growth after warm-up (default 50)")
    p.add_argument("--every", type=int, default=25, help="print a reading every N jobs (default 25)")
    p.add_argument("--without-release", action="store_true",
                   help="start the server with lab.job_memory.job_memory disabled (shows the leak it fixes)")
    p.add_argument("--keep", action="store_true", help="keep the temporary runs folder and the server log")
    return p.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Server:
    def __init__(self, base: Path, backend: str, without_release: bool):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = base / "server.log"
        args = ["--port", str(self.port), "--runs-dir", str(base / "runs"), "--backend", backend]
        cmd = [sys.executable, "-c", WITHOUT_RELEASE, *args] if without_release else [sys.executable, "lab_app.py", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False",
               "TF_CPP_MIN_LOG_LEVEL": "2", "VISION_LAB_PRETRAINED": "0"}
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lab_app.py exited early:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"lab_app.py did not answer within {timeout}s:\n{self.tail()}")

    def rss(self) -> float:
        return rss_mb(self.proc.pid)

    def tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


class Soak:
    """Students take jobs from one shared count; job k brings predictions P*(k+1)//N - P*k//N."""

    def __init__(self, args, server: Server):
        self.args, self.server = args, server
        self.lock = threading.Lock()
        self.next_job = 0
        self.jobs_done = 0
        self.preds_done = 0
        self.failures: list[str] = []
        self.job_seconds: list[tuple[int, float]] = []  # (job number, submit -> done)
        self.pred_ms: list[float] = []
        self.readings: list[tuple[int, int, float]] = []  # (jobs done, predictions done, RSS MB)
        self.warm_rss: float | None = None
        self.half_rss: float | None = None  # at half the jobs: growth over the second half is the slope, caches full
        self.peak = 0.0
        self._stop = threading.Event()

    def predictions_for(self, k: int) -> int:
        a = self.args
        return a.predictions * (k + 1) // a.jobs - a.predictions * k // a.jobs

    def student(self, index: int) -> None:
        from gradio_client import Client, handle_file

        client = Client(self.server.url, verbose=False)
        rng = random.Random(index)
        runs: list[str] = []
        while True:
            with self.lock:
                if self.next_job >= self.args.jobs or len(self.failures) > 5:
                    return
                k = self.next_job
                self.next_job += 1
            t0 = time.perf_counter()
            try:
                hp = {"model": self.args.model, "dataset": self.args.dataset, "epochs": self.args.epochs, "seed": k}
                job = client.predict(hp, api_name="/train")
                while True:
                    status = client.predict(job["job_id"], api_name="/job_status")
                    if status["state"] not in ("queued", "running"):
                        break
                    time.sleep(0.1)
                if status["state"] != "done" or not status.get("run_id"):
                    raise RuntimeError(f"job {k} ended {status['state']}: {status.get('message')}")
                runs.append(status["run_id"])
            except Exception as e:  # noqa: BLE001 - record and go on; the exit status says it failed
                with self.lock:
                    self.failures.append(f"job {k}: {type(e).__name__}: {e}")
                continue
            seconds = time.perf_counter() - t0
            for i in range(self.predictions_for(k)):
                # half on the new run (the Try tab right after training), half on an older one of this student's
                run_id = runs[-1] if i % 2 == 0 else rng.choice(runs)
                t1 = time.perf_counter()
                try:
                    out = client.predict(handle_file(str(rng.choice(EXAMPLES))), run_id, api_name="/predict")
                    if out.get("run_id") != run_id:
                        raise RuntimeError(f"predicted with {out.get('run_id')}, not {run_id}")
                except Exception as e:  # noqa: BLE001
                    with self.lock:
                        self.failures.append(f"prediction on {run_id}: {type(e).__name__}: {e}")
                    continue
                with self.lock:
                    self.pred_ms.append((time.perf_counter() - t1) * 1000)
                    self.preds_done += 1
            with self.lock:
                self.job_seconds.append((k, seconds))
                self.jobs_done += 1
                done = self.jobs_done
                rss = self.server.rss()
                self.peak = max(self.peak, rss)
                if done == self.args.warmup_jobs:
                    self.warm_rss = rss
                if done == self.args.jobs // 2:
                    self.half_rss = rss
                if done % self.args.every == 0 or done == self.args.warmup_jobs:
                    self.readings.append((done, self.preds_done, rss))
                    print(f"  {done:4d} jobs  {self.preds_done:5d} predictions  server RSS {rss:7.1f} MB", flush=True)

    def monitor(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.peak = max(self.peak, self.server.rss())
            except (OSError, RuntimeError):
                return

    def run(self) -> None:
        watcher = threading.Thread(target=self.monitor, daemon=True)
        watcher.start()
        threads = [threading.Thread(target=self.student, args=(i,), name=f"student-{i}") for i in range(self.args.students)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._stop.set()


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.warmup_jobs >= args.jobs:
        sys.exit("--warmup-jobs must be smaller than --jobs")
    base = Path(tempfile.mkdtemp(prefix="vision-lab-soak-"))
    print(f"soak: {args.jobs} jobs ({args.model} on {args.dataset}, {args.epochs} epoch(s)), {args.predictions} "
          f"predictions, {args.students} students; backend {args.backend}"
          f"{'; WITHOUT the per-job release (lab.job_memory.job_memory disabled)' if args.without_release else ''}")
    print(f"machine: {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    server = Server(base, args.backend, args.without_release)
    t0 = time.perf_counter()
    try:
        server.wait_ready()
        start = server.rss()
        print(f"server up in {time.perf_counter() - t0:.0f} s (pid {server.proc.pid}); RSS at start {start:.1f} MB", flush=True)
        soak = Soak(args, server)
        t1 = time.perf_counter()
        soak.run()
        wall = time.perf_counter() - t1
        time.sleep(2)  # let the worker finish its after-job release
        end = server.rss()
    finally:
        server_tail = server.tail()
        server.close()
    warm = soak.warm_rss
    growth = end - warm if warm is not None else float("nan")
    per_job = growth / max(1, soak.jobs_done - args.warmup_jobs) * 1024
    secs = [s for _, s in sorted(soak.job_seconds)]
    print()
    print(f"jobs done {soak.jobs_done}/{args.jobs}, predictions {soak.preds_done}/{args.predictions}, "
          f"failures {len(soak.failures)}, wall {wall / 60:.1f} min")
    if secs:
        first, last = secs[:10], secs[-50:]
        print(f"job wall time (submit -> done, queue wait included): first 10 median {statistics.median(first):.2f} s, "
              f"last 50 median {statistics.median(last):.2f} s")
    if soak.pred_ms:
        q = statistics.quantiles(soak.pred_ms, n=20) if len(soak.pred_ms) > 1 else soak.pred_ms * 19
        print(f"/predict round trip: p50 {statistics.median(soak.pred_ms):.0f} ms, p95 {q[18]:.0f} ms")
    print(f"server RSS: start {start:.1f} MB, after warm-up ({args.warmup_jobs} jobs) "
          f"{warm if warm is not None else float('nan'):.1f} MB, end {end:.1f} MB, peak {soak.peak:.1f} MB")
    print(f"growth after warm-up: {growth:+.1f} MB over {soak.jobs_done - args.warmup_jobs} jobs "
          f"({per_job:+.0f} KB/job); target < {args.target_mb:g} MB")
    if soak.half_rss is not None and args.jobs // 2 > args.warmup_jobs:
        rest = soak.jobs_done - args.jobs // 2
        print(f"second half ({args.jobs // 2} -> {soak.jobs_done} jobs): {end - soak.half_rss:+.1f} MB "
              f"({(end - soak.half_rss) / max(1, rest) * 1024:+.0f} KB/job)")
    for f in soak.failures[:10]:
        print("FAILED", f)
    if soak.failures:
        print("server log tail:\n" + server_tail)
    ok = not soak.failures and soak.jobs_done == args.jobs and growth < args.target_mb
    return verdict(ok, base, args.keep)


def verdict(ok: bool, base: Path, keep: bool) -> int:
    """Say whether the target was met, keep or remove the temporary folder; the exit status."""
    print("TARGET MET" if ok else "TARGET MISSED")
    if keep:
        print(f"kept {base}")
    else:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
