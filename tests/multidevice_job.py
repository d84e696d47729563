"""Train through the engine on whatever devices this process was given, and report as JSON.

Run by tests/test_multidevice.py in a fresh subprocess per backend, because the Keras backend
and the device layout are fixed for the life of a process:

    KERAS_BACKEND=tensorflow VISION_LAB_CPU_DEVICES=2 python tests/multidevice_job.py --backend tensorflow
    JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        python tests/multidevice_job.py --backend jax

Three jobs go through lab.training.fit, as the JobManager would run them:
  1. the default mlp for a few epochs, saved with lab.runs.RunStore, loaded back and predicted;
  2. a long job whose stop flag a watcher thread sets as soon as the first metric row appears;
  3. a job made to diverge mid-way through its second epoch (see `_diverging_sgd`);
  4. a short job on the same devices, reported as an accelerator, so it takes the accelerator
     path (several steps per device call, lab.training.steps_per_execution);
  5. an augmented job, twice with one seed, its augmentation on the devices (lab.feed.device_augments,
     forced with VISION_LAB_DEVICE_AUGMENT=1: "auto" keeps it for accelerators under JAX).

The script only measures; the test decides. The last stdout line is `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Kept in range of what a student may choose (lab.hparams.FIELDS); the divergence is forced.
DIVERGE_LR = 0.05
DIVERGE_AFTER_EPOCHS = 1.5  # the learning rate explodes half-way through the second epoch
EXPLODED_LR = 1e30


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="auto", help="passed to lab.backend.configure")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--skip-stop", action="store_true")
    p.add_argument("--skip-diverge", action="store_true")
    p.add_argument("--skip-accel", action="store_true")
    p.add_argument("--skip-augment", action="store_true")
    args = p.parse_args()

    t0 = time.perf_counter()
    from lab import backend

    choice = backend.configure(args.backend)
    rt = backend.runtime()

    import numpy as np

    from lab import datasets, training
    from lab.hparams import validate
    from lab.runs import RunStore

    timings = {"startup_s": time.perf_counter() - t0}
    data = datasets.load("digits")
    result = {
        "backend": rt.backend,
        "keras_backend": __import__("keras").backend.backend(),
        "choice": choice.backend,
        "device_kind": rt.device_kind,
        "device_count": rt.device_count,
        "replicas": rt.replicas,
        "notes": rt.notes,
    }

    # -- 1. the default mlp, trained, saved, loaded and predicted -------------------
    hp = validate(epochs=args.epochs)  # defaults: mlp, adam 3e-3, batch 32 per device
    train_idx, val_idx = datasets.split(data, hp.validation_split, hp.seed)
    global_batch = hp.batch_size * rt.replicas
    steps = training.steps_per_epoch(len(train_idx), global_batch)
    every = max(1, steps // training.RECORDS_PER_EPOCH)
    log = training.TrainingLog()
    t = time.perf_counter()
    fit = training.fit(hp, rt, log)
    timings["train_s"] = time.perf_counter() - t
    rows = log.snapshot()
    result.update(
        global_batch=global_batch,
        steps_per_epoch=steps,
        rows=len(rows),
        expected_rows=hp.epochs * (len(range(every, steps, every)) + 1),
        last_step=rows[-1]["step"] if rows else None,
        expected_last_step=hp.epochs * steps,
        val_rows=sum("val_accuracy" in r for r in rows),
        val_accuracy=rows[-1].get("val_accuracy") if rows else None,
        fit_stopped=fit.stopped,
        fit_diverged=fit.diverged,
        progress_replicas=log.progress.replicas,
        input=log.progress.input,  # lab.feed: the digits stay on the devices (a copy on each replica)
        variable_devices=_variable_devices(fit.model, rt.backend),
    )

    x_val = data.x[val_idx].astype(np.float32) / 255.0
    y_val = data.y[val_idx]
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        t = time.perf_counter()
        run_id = store.save(owner="multidevice", hparams=hp, metrics=rows, model=fit.model,
                            class_names=fit.class_names, look=data.look, state="done")
        run = store.load(run_id)
        timings["save_load_s"] = time.perf_counter() - t
        probs = np.asarray(run.predict(x_val))  # the whole validation set in one batch (359, odd)
        one = np.asarray(run.predict(x_val[:1]))  # the Try tab's batch of one
        result.update(
            saved_val_accuracy=store.info(run_id).val_accuracy,
            loaded_shape=list(probs.shape),
            loaded_finite=bool(np.isfinite(probs).all()),
            loaded_rows_sum_to_one=bool(np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)),
            # exact accuracy over every validation image once: equals the training log's
            # val_accuracy only if the zero-weight padding really did not count
            loaded_accuracy=float((probs.argmax(axis=1) == y_val).mean()),
            single_shape=list(one.shape),
            single_matches_batch=bool(np.allclose(one[0], probs[0], atol=1e-5)),
        )
    result["val_count"] = int(len(val_idx))

    # -- 2. stopped from another thread after the first metric row --------------------
    if not args.skip_stop:
        hp2 = validate(epochs=50, seed=7)
        log2 = training.TrainingLog()
        seen = {}

        def watcher():
            deadline = time.time() + 120
            while not log2.rows and time.time() < deadline:
                time.sleep(0.002)
            seen["rows_when_stopped"] = len(log2.rows)
            seen["step_when_stopped"] = log2.rows[0]["step"] if log2.rows else None
            log2.stop.set()

        th = threading.Thread(target=watcher, daemon=True)
        t = time.perf_counter()
        th.start()
        fit2 = training.fit(hp2, rt, log2)
        th.join(5)
        rows2 = log2.snapshot()
        result["stop"] = {
            "seconds": time.perf_counter() - t,
            "stopped": fit2.stopped,
            "diverged": fit2.diverged,
            "epochs_asked": hp2.epochs,
            "rows": len(rows2),
            "last_epoch": rows2[-1]["epoch"] if rows2 else None,
            "last_step": rows2[-1]["step"] if rows2 else None,
            "steps_per_epoch": training.steps_per_epoch(len(datasets.split(data, hp2.validation_split, hp2.seed)[0]), hp2.batch_size * rt.replicas),
            **seen,
        }

    # -- 3. divergence: the last finite weights come back ------------------------------
    if not args.skip_diverge:
        hp3 = validate(optimizer="sgd", learning_rate=DIVERGE_LR, epochs=4, seed=3)
        tr3, va3 = datasets.split(data, hp3.validation_split, hp3.seed)
        steps3 = training.steps_per_epoch(len(tr3), hp3.batch_size * rt.replicas)
        boundary = int(steps3 * DIVERGE_AFTER_EPOCHS)
        original = training.OPTIMIZERS["sgd"]
        training.OPTIMIZERS["sgd"] = _diverging_sgd(boundary)
        log3 = training.TrainingLog()
        t = time.perf_counter()
        try:
            fit3 = training.fit(hp3, rt, log3)
        finally:
            training.OPTIMIZERS["sgd"] = original
        rows3 = log3.snapshot()
        weights = fit3.model.get_weights()
        # evaluate through the engine's own padded pipeline, on the restored weights
        ev = fit3.model.evaluate(
            training.make_eval_pipeline(data.x[va3], data.y[va3], hp3.batch_size * rt.replicas),
            verbose=0, return_dict=True,
        )
        last_val = [r for r in rows3 if "val_accuracy" in r]
        result["diverge"] = {
            "seconds": time.perf_counter() - t,
            "diverged": fit3.diverged,
            "stopped": fit3.stopped,
            "log_diverged": log3.diverged,
            "boundary_step": boundary,
            "steps_per_epoch": steps3,
            "rows": len(rows3),
            "rows_finite": all(math.isfinite(v) for r in rows3 for v in r.values()),
            "last_step": rows3[-1]["step"] if rows3 else None,
            "weights_finite": bool(all(np.isfinite(w).all() for w in weights)),
            "restored_val_accuracy": float(ev["accuracy"]),
            "restored_val_loss": float(ev["loss"]),
            "last_logged_val_accuracy": last_val[-1]["val_accuracy"] if last_val else None,
        }

    # -- 4. the accelerator path: several steps per call -------------------------------
    if not args.skip_accel:
        accel = dataclasses.replace(rt, device_kind="TPU v5 lite (faked)")
        hp4 = validate(epochs=2, batch_size=8, seed=5)
        steps4 = training.steps_per_epoch(len(datasets.split(data, hp4.validation_split, hp4.seed)[0]), hp4.batch_size * rt.replicas)
        log4 = training.TrainingLog()
        t = time.perf_counter()
        fit4 = training.fit(hp4, accel, log4)
        rows4 = log4.snapshot()
        result["accel"] = {
            "seconds": time.perf_counter() - t,
            "wanted_steps_per_execution": training.steps_per_execution(steps4, accel.device_kind),
            "steps_per_execution": int(fit4.model.steps_per_execution),
            "steps_per_epoch": steps4,
            "last_step": rows4[-1]["step"] if rows4 else None,
            "expected_last_step": hp4.epochs * steps4,
            "steps_increase": all(a["step"] < b["step"] for a, b in zip(rows4, rows4[1:])),
            "val_rows": sum("val_accuracy" in r for r in rows4),
            "val_accuracy": rows4[-1].get("val_accuracy") if rows4 else None,
            "stopped": fit4.stopped,
            "diverged": fit4.diverged,
        }

    # -- 5. augmentation inside the compiled step, on every replica ----------------------
    if not args.skip_augment:
        from lab import augment, feed

        os.environ[feed.DEVICE_AUGMENT_ENV] = "1"
        hp5 = validate(epochs=3, augment_rotation=0.05, augment_translate=0.1, seed=5)
        t = time.perf_counter()
        fits5 = []
        for _ in range(2 if rt.backend == "jax" else 1):  # the same seed twice: the same run (JAX: on the device)
            log5 = training.TrainingLog()
            fit5 = training.fit(hp5, rt, log5)
            fits5.append((fit5, log5.snapshot(), log5.progress.input))
        (fit5, rows5, input5), rows5b = fits5[0], fits5[-1][1]
        va5 = datasets.split(data, hp5.validation_split, hp5.seed)[1]
        ev5 = fit5.model.evaluate(  # the engine's padded pipeline: predict() cannot split 359 over 2 devices
            training.make_eval_pipeline(data.x[va5], data.y[va5], hp5.batch_size * rt.replicas), verbose=0,
            return_dict=True)
        aug5 = augment.build(hp5, data.look)
        trainer5 = feed.on_device(fit5.model, data.x, rt, *training.loss_and_metrics(False), augment=aug5.per_image)
        result["augment"] = {
            "seconds": time.perf_counter() - t,
            "input": input5,
            "val_accuracy": rows5[-1].get("val_accuracy") if rows5 else None,
            # validation sees the pictures as they are: the model's own accuracy on them
            "model_accuracy": float(ev5["accuracy"]),
            "same_run_again": rows5 == rows5b if len(fits5) == 2 else None,
            "saved_layers": sorted({type(layer).__name__ for layer in fit5.model._flatten_layers()}),
            "trainer_compiled": bool(trainer5.jit_compile),
        }
        del os.environ[feed.DEVICE_AUGMENT_ENV]

    timings["total_s"] = time.perf_counter() - t0
    result["timings"] = {k: round(v, 2) for k, v in timings.items()}
    print("RESULT " + json.dumps(result), flush=True)


def _diverging_sgd(boundary: int):
    """An OPTIMIZERS entry whose learning rate jumps to 1e30 at step `boundary`.

    No setting inside the allowed ranges makes the digits models' loss NaN (tried: mlp and
    small_cnn, sgd and adam at learning rate 1.0, batch 1/32/1024, two seeds: the clipped
    cross-entropy keeps the loss finite, it only stops learning). A built-in, serialisable
    schedule makes the blow-up happen on both backends, at a known step, after one good epoch.
    """
    import keras

    def make(lr):
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay([boundary], [lr, EXPLODED_LR])
        return keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)

    return make


def _variable_devices(model, backend_name: str) -> int:
    """On how many devices the first kernel lives (2 means the model really is replicated)."""
    v = model.trainable_variables[0].value
    if backend_name == "jax":
        return len(v.sharding.device_set)
    values = getattr(v, "values", None)  # tf.distribute MirroredVariable: one copy per replica
    return len(values) if values is not None else 1


if __name__ == "__main__":
    main()
