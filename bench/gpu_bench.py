#!/usr/bin/env python
"""GPU figures for bench/README.md: the lab's detection, the lab's fit speed, and the overhead ratio.

Runs on a lent accelerator machine where only JAX has a GPU build, so everything here uses the
Keras JAX backend (TensorFlow, CPU-only there, serves tf.data as on Colab's TPU runtime). The
8x8 `digits` set is tiny for a GPU, so `--synthetic N` swaps in N random 32x32x3 images
(CIFAR-sized, 10 classes) by replacing lab.datasets.load in this process; lab/ is not edited.

    python bench/gpu_bench.py describe
    python bench/gpu_bench.py fit --models mlp small_cnn --epochs 8 [--synthetic 20000 --batch-size 128]
    python bench/gpu_bench.py overhead [--synthetic 20000] -- --backend jax --model small_cnn ...
    python bench/gpu_bench.py bare-arrays --models mlp small_cnn   # no TensorFlow needed (fallback)

VISION_LAB_PRECISION (float32, mixed_float16, mixed_bfloat16) overrides the lab's precision choice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def synthetic(n: int):
    """N random uint8 32x32x3 images in 10 balanced classes, shaped like CIFAR-10."""
    import numpy as np

    from lab import datasets
    from lab.images import ImageLook

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    y = (np.arange(n) % 10).astype(np.int64)
    return datasets.Dataset("digits", x, y, tuple(f"c{i}" for i in range(10)), ImageLook(32, 32, 3))


def use_synthetic(n: int) -> None:
    """Make every lab.datasets.load in this process return the synthetic set (bench-only patch)."""
    from lab import datasets

    data = synthetic(n)
    datasets.load = lambda name: data


def describe() -> None:
    from lab import backend

    rt = backend.runtime()
    import jax
    import keras

    from lab import training

    facts = backend.gather_facts()
    print("gather_facts():", facts)
    print("choose('auto') on this machine:", backend.choose("auto", facts))
    print("runtime.describe():", json.dumps(rt.describe(), indent=1))
    print("runtime.summary():", rt.summary())
    print("keras", keras.__version__, "jax", jax.__version__, "devices", jax.devices())
    print("global dtype policy:", keras.mixed_precision.global_policy().name)
    for steps in (44, 125, 390):
        print(f"steps_per_execution({steps} steps/epoch, {rt.device_kind!r}) =", training.steps_per_execution(steps, rt.device_kind))
    try:
        import tensorflow as tf

        print("tensorflow", tf.__version__, "GPUs seen by TF:", tf.config.list_physical_devices("GPU"))
    except ImportError as e:
        print("tensorflow not importable:", e)


def lab_fit(models, epochs, batch_size) -> None:
    """images/s of lab.training.fit per model: median epoch after the first (validation included)
    and the lab's own live figure (log.progress['images_per_sec'], training steps only)."""
    import keras

    from lab import backend, training
    from lab.hparams import validate

    rt = backend.runtime()
    print("runtime:", rt.summary(), "| policy", rt.policy)
    for name in models:
        ends = []

        class EpochTimer(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                ends.append(time.perf_counter())

        real_fit = keras.Model.fit
        def timed_fit(self, *a, callbacks=None, **k):
            timer = EpochTimer()
            if isinstance(callbacks, keras.callbacks.CallbackList):  # the lab's (lab.feed.LaggedCallbacks)
                timer.set_model(self)
                callbacks.callbacks.append(timer)
                return real_fit(self, *a, callbacks=callbacks, **k)
            return real_fit(self, *a, callbacks=[*(callbacks or []), timer], **k)

        keras.Model.fit = timed_fit
        hp = validate(model=name, epochs=epochs, batch_size=batch_size)
        log = training.TrainingLog()
        t0 = time.perf_counter()
        try:
            result = training.fit(hp, rt, log)
        finally:
            keras.Model.fit = real_fit
        steps = log.progress.steps_per_epoch
        gaps = sorted(b - a for a, b in zip(ends, ends[1:]))
        ips = steps * batch_size * rt.replicas / gaps[len(gaps) // 2]
        last = log.rows[-1]
        spe = getattr(result.model, "steps_per_execution", "?")
        print(f"RESULT {json.dumps({'model': name, 'img_s_fit': round(ips), 'img_s_live': log.progress.images_per_sec, 'steps_per_epoch': steps, 'steps_per_execution': spe, 'batch': batch_size, 'epochs': epochs, 'first_epoch_s': round(ends[0] - t0, 2), 'val_accuracy': last.get('val_accuracy'), 'diverged': result.diverged, 'policy': rt.policy})}", flush=True)


def bare_arrays(models, epochs, batch_size) -> None:
    """Fallback without TensorFlow: Keras on JAX, model.fit on float arrays (NOT the lab's tf.data path)."""
    import keras
    import numpy as np

    from lab import datasets
    from lab.hparams import validate
    from models import MODELS

    data = datasets.load("digits")
    x = data.x.astype(np.float32) / np.float32(255.0)
    for name in models:
        hp = validate(model=name, epochs=epochs, batch_size=batch_size)
        model = MODELS[name].build(data.look.shape(), data.num_classes, hp)
        model.compile(optimizer=keras.optimizers.Adam(hp.learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        ends = []

        class EpochTimer(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                ends.append(time.perf_counter())

        model.fit(x, data.y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[EpochTimer()])
        gaps = sorted(b - a for a, b in zip(ends, ends[1:]))
        print(f"RESULT bare-arrays {name}: {len(x) / gaps[len(gaps) // 2]:,.0f} img/s (median epoch, no validation)")


def main() -> int:
    argv = sys.argv[1:]
    rest = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("describe", "fit", "overhead", "bare-arrays"))
    p.add_argument("--models", nargs="+", default=["mlp", "small_cnn"])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--synthetic", type=int, default=0, help="N random 32x32x3 images instead of digits (0 = digits)")
    args = p.parse_args(argv)
    if args.synthetic:
        use_synthetic(args.synthetic)
    if args.what == "describe":
        describe()
    elif args.what == "fit":
        lab_fit(args.models, args.epochs, args.batch_size)
    elif args.what == "bare-arrays":
        bare_arrays(args.models, args.epochs, args.batch_size)
    else:
        import train_overhead

        return train_overhead.main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
