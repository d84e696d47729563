#!/usr/bin/env python
"""Training images/s of every model family, and what feature caching gives a frozen backbone.

Every fit is a lab job: lab.training.fit(hp, runtime, TrainingLog(), data) on the bundled digits,
validation included, on the CPU (TensorFlow backend). A small timer callback is added to each
model.fit call by wrapping keras.Model.fit (epoch ends only, no per-batch hook), and

    images/s = steps_per_epoch * batch_size / median(epoch time, epochs after the first)

so building, compiling and tracing are left out (the first epoch pays them).

For the transfer models two jobs run with the same settings, one after the other:
  cached = what the lab does without augmentation: the backbone's features are computed once
           (the feature cache is cleared first, so that cost is in the job), then the head trains
           on them;
  images = the path taken when augmentation is on: every epoch runs the frozen backbone over every
           image. Chosen here with lab.training.FEATURE_CACHE = False, so the images are not
           changed and both jobs do the same arithmetic for the head.
Two ratios cached / images are printed: per epoch (images/s) and for the whole job (wall time of
fit(), building and the feature computation included), which grows with the number of epochs.

ImageNet weights are not needed for speed: without --pretrained the backbones get random weights
(VISION_LAB_PRETRAINED=0), so this runs offline.

    python bench/model_throughput.py                         # every model, 3 epochs (~4 min on 2 cores)
    python bench/model_throughput.py --models mlp mobilenet_v3_small --epochs 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODELS_DEFAULT = ["mlp", "small_cnn", "resnet", "tiny_vit", "mobilenet_v3_small", "efficientnet_b0"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=MODELS_DEFAULT, help="keys of models.MODELS (default: all six)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per job, the first is not timed (default 3)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32, the lab default)")
    p.add_argument("--pretrained", action="store_true", help="ImageNet weights for the transfer models (downloads them)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.epochs < 2:
        sys.exit("--epochs must be at least 2: the first epoch compiles and is not timed")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["VISION_LAB_PRETRAINED"] = "1" if args.pretrained else "0"
    from lab import backend

    backend.configure("tensorflow")
    import keras

    from lab import datasets, features, training
    from lab.hparams import validate
    from models import MODELS

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = []

        def on_epoch_end(self, epoch, logs=None):
            self.ends.append(time.perf_counter())

    timers: list[EpochTimer] = []
    real_fit = keras.Model.fit

    def timed_fit(self, *a, **k):
        timers.append(EpochTimer())
        return real_fit(self, *a, **{**k, "callbacks": [*k.get("callbacks", []), timers[-1]]})

    keras.Model.fit = timed_fit
    runtime = backend.runtime()
    data = datasets.load("digits")

    def job(name: str, through_images: bool = False) -> tuple[float, float]:
        """(images/s of the median timed epoch, wall seconds of the whole fit())."""
        hp = validate(model=name, epochs=args.epochs, batch_size=args.batch_size)
        features.clear()
        training.FEATURE_CACHE = not through_images
        timers.clear()
        log = training.TrainingLog()
        t0 = time.perf_counter()
        try:
            training.fit(hp, runtime, log, data)
        finally:
            training.FEATURE_CACHE = True
        wall = time.perf_counter() - t0
        ends = timers[-1].ends
        epoch_s = statistics.median(b - a for a, b in zip(ends, ends[1:]))
        return log.progress["steps_per_epoch"] * args.batch_size / epoch_s, wall

    print(f"Vision Lab model throughput · {time.strftime('%Y-%m-%d %H:%M')} · {platform.node()}")
    print(f"  Python {platform.python_version()}, Keras {keras.__version__} ({runtime.backend}), {runtime.summary()}; "
          f"digits {len(data.x)} images, batch {args.batch_size}, {args.epochs} epochs, "
          f"{'ImageNet' if args.pretrained else 'random'} backbone weights")
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)\n")
    print(f"{'model':<20}{'img/s':>10}{'job s':>8}   transfer: {'img/s images':>12}{'job s':>8}"
          f"{'cached/images per epoch':>25}{'whole job':>11}")
    for name in args.models:
        ips, wall = job(name)
        line = f"{name:<20}{ips:>10,.0f}{wall:>8.1f}"
        if MODELS[name].transfer:
            ips_img, wall_img = job(name, through_images=True)
            line += f"{'':>13}{ips_img:>12,.0f}{wall_img:>8.1f}{ips / ips_img:>25.1f}{wall_img / wall:>11.1f}"
        print(line, flush=True)
    print(f"\n  load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("  img/s: median epoch after the first, validation included; job s: the whole fit() (building, "
          "feature computation, compilation). One run on a shared machine: compare ratios, not absolutes.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
