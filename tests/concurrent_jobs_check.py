"""Students' jobs at once, one per device, through the JobManager as the app runs it; report JSON.

Run by tests/test_multidevice.py in a fresh subprocess per backend, on two simulated CPU devices
(VISION_LAB_CPU_DEVICES=2, which lab.backend.configure also turns into XLA's host device count for
JAX) with VISION_LAB_JOB_SLOTS=device, since on CPUs the lab spreads by default:

    KERAS_BACKEND=tensorflow VISION_LAB_CPU_DEVICES=2 VISION_LAB_JOB_SLOTS=device \
        python tests/concurrent_jobs_check.py --backend tensorflow
    JAX_PLATFORMS=cpu VISION_LAB_CPU_DEVICES=2 VISION_LAB_JOB_SLOTS=device \
        python tests/concurrent_jobs_check.py --backend jax

The runtime is made in the main thread, as lab_app does, and the jobs train in the workers:
  1. three jobs, queued while paused: alice's two and bob's one. Round robin runs alice, bob, then
     alice's second; the first two train at once, each on its own device; the third starts when a
     slot comes free. Each job notes, from inside its worker, where its variables live, where its
     compiled steps run (a test step's outputs; on JAX also the optimizer's step counter, which the
     train step writes), the dtype policy and distribution its thread sees, and when it trained.
  2. alice's and bob's first jobs again, one at a time on one device: a seed gives the same run
     (losses, accuracy) whether its job trained alone or beside another (lab.jobs' seeded start).
  3. one job in "spread" mode (one slot over both devices), in a worker thread: its weights are
     replicated on both devices (the distribution reaches the worker, not only the main thread).

The script only measures; the test decides. The last stdout line is `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="auto")
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()

    t0 = time.perf_counter()
    from lab import backend, job_memory
    from lab.slots import job_slots

    backend.configure(args.backend)
    rt = backend.runtime()  # in the main thread, as lab_app.build_app does
    slots = job_slots(rt)

    import keras
    import numpy as np

    from lab import datasets, training
    from lab.hparams import validate
    from lab.jobs import JobManager
    from lab.runs import RunStore

    registry = job_memory._gradient_registry()
    registry_before = set(registry) if registry is not None else set()
    data = datasets.load("digits")
    records: dict[int, dict] = {}

    def devices_of(value) -> list[str]:
        if hasattr(value, "devices"):  # a jax.Array
            return sorted(f"{d.platform}:{d.id}" for d in value.devices())  # str(d) is TFRT_CPU_0 on older JAX
        values = getattr(value, "values", None)  # a MirroredVariable: one copy per replica
        if values is not None:
            return sorted(str(v.device) for v in values)
        return [str(value.device)]

    def spy(hp, runtime, log, data=None):
        """lab.training.fit, noting from inside the worker where the job really ran."""
        thread = {"policy": keras.mixed_precision.global_policy().name,
                  "distribution": repr(keras.distribution.distribution()) if rt.backend == "jax" else None}
        started = time.time()
        result = training.fit(hp, runtime, log, data=data)
        ended = time.time()
        model = result.model
        _, val_idx = datasets.split(data, hp.validation_split, hp.seed)
        if rt.backend == "jax":  # the train step wrote the step counter; a forward pass, for its outputs
            out = {"probabilities": model(data.x[val_idx[:32]].astype("float32") / 255.0)}
        else:  # a compiled test step (tf.function), called as Keras calls its steps
            model.make_test_function()
            out = model.test_function(iter(training.make_eval_pipeline(data.x[val_idx[:64]], data.y[val_idx[:64]], 32)))
            out = out.get_value() if hasattr(out, "get_value") else out
        records[hp.seed] = {
            "worker": threading.current_thread().name,
            "slot_device": runtime.device_index,
            "started": started, "ended": ended,
            "kernel_devices": devices_of(model.trainable_variables[0].value),
            "all_variable_devices": sorted({d for v in model.variables for d in devices_of(v.value)}),
            "step_counter_devices": devices_of(model.optimizer.iterations.value),
            "test_step_devices": sorted({d for v in out.values() for d in devices_of(v)}),
            "accelerator": log.progress.accelerator,
            **thread,
        }
        return result

    with tempfile.TemporaryDirectory() as tmp:
        runs = RunStore(Path(tmp) / "runs")
        jm = JobManager(runs, lambda: rt, train=spy, slots=slots, per_student=2)
        jm.pause(True)
        hp = {"epochs": args.epochs}
        a1 = jm.submit("alice", validate({**hp, "seed": 1}))
        a2 = jm.submit("alice", validate({"epochs": 1, "seed": 2}))
        b1 = jm.submit("bob", validate({**hp, "seed": 11}))
        order = jm.order()
        positions = {k: jm.view(j.job_id).position for k, j in (("a1", a1), ("a2", a2), ("b1", b1))}
        jm.pause(False)
        t = time.perf_counter()
        ended = {k: jm.wait(j.job_id, 240) for k, j in (("a1", a1), ("b1", b1), ("a2", a2))}
        jobs_s = time.perf_counter() - t
        result = {
            "backend": rt.backend, "device_count": rt.device_count, "job_mode": rt.job_mode,
            "jobs_at_once": rt.jobs_at_once, "summary": rt.summary(), "policy": rt.policy,
            "slots": jm.slots, "slot_devices": [s.device_index for s in slots],
            "order": [{a1.job_id: "a1", a2.job_id: "a2", b1.job_id: "b1"}[k] for k in order],
            "positions": positions,
        }
        jobs = {}
        for name, job in ended.items():
            info = runs.info(job.run_id) if job.run_id else None
            loaded_accuracy = None
            if info is not None:
                _, val_idx = datasets.split(data, job.hparams.validation_split, job.hparams.seed)
                probs = np.asarray(runs.load(job.run_id).predict(data.x[val_idx].astype(np.float32) / 255.0))
                loaded_accuracy = float((probs.argmax(axis=1) == data.y[val_idx]).mean())
            jobs[name] = {
                "state": job.state, "message": job.message, "slot": job.slot, "owner": job.owner,
                "run_owner": info.owner if info else None,
                "val_accuracy": info.val_accuracy if info else None,
                "loaded_accuracy": loaded_accuracy,
                "evaluated": runs.evaluation(job.run_id) is not None if job.run_id else False,
                **records.get(job.hparams.seed, {}),
            }
        result["jobs"] = jobs
        result["jobs_s"] = round(jobs_s, 2)

        # -- 2. the same two seeds again, one at a time on one device: the same runs ----------
        alone = JobManager(runs, lambda: rt, train=spy, slots=[slots[0]])
        result["alone"] = {}
        for name in ("a1", "b1"):
            job = alone.wait(alone.submit(f"{name}-alone", ended[name].hparams).job_id, 240)
            rows, together = job.log.snapshot(), ended[name].log.snapshot()
            result["alone"][name] = {
                "state": job.state,
                "val_accuracy": runs.info(job.run_id).val_accuracy if job.run_id else None,
                "losses": [r["loss"] for r in rows], "losses_together": [r["loss"] for r in together],
            }

        # -- 3. spread: one slot over both devices, in a worker thread ---------------------
        spread = JobManager(runs, lambda: rt, train=spy, slots=[rt])
        job = spread.wait(spread.submit("carol", validate({"epochs": 1, "seed": 21})).job_id, 240)
        result["spread"] = {"state": job.state, "message": job.message, **records.get(21, {})}

    registry = job_memory._gradient_registry()
    result["registry_left"] = sorted(n for n in (registry or ()) if n not in registry_before
                                     and n.startswith("CustomGradient-"))
    result["total_s"] = round(time.perf_counter() - t0, 2)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
