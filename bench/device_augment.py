#!/usr/bin/env python
"""Augmentation on the device against augmentation in tf.data on the host (issue 19).

The same lab job (lab.training.fit, as a Train press runs it) with VISION_LAB_DEVICE_AUGMENT=0
(every batch augmented by tf.data maps on the host, then copied in) and =1 (the images stay on
the device, augmented inside the compiled step: lab.feed.on_device), in alternating rounds in
this one process. Printed per fit: the lab's own training images/s (the status line's figure,
last epoch), the wall time of the fit (compilation included) and the validation accuracy; then
the medians and the ratio device / host of the images/s.

    python bench/device_augment.py                                   # TensorFlow, small_cnn on digits
    python bench/device_augment.py --backend jax
    python bench/device_augment.py --backend jax --synthetic 10000 --batch-size 128   # CIFAR-sized
    python bench/device_augment.py --augment rotation=0.05 zoom=0.1 translate=0.1 erasing=0.3

The last line is `RESULT {json}`. The accuracies are not expected to match to the digit: the two
paths draw their random transforms from different generators (same kinds, same ranges).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_AUGMENT = ["rotation=0.05", "zoom=0.1", "translate=0.1"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="measured rounds, each one fit per path (default 3)")
    p.add_argument("--synthetic", type=int, default=0, help="N random 32x32x3 images instead of digits")
    p.add_argument("--augment", nargs="+", default=DEFAULT_AUGMENT,
                   help="settings as name=strength, without the augment_ prefix (flip=1 for a switch)")
    return p.parse_args(argv)


def settings(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        out[f"augment_{name}"] = True if name == "flip" else float(value or 1)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    if args.synthetic:
        from gpu_bench import use_synthetic

        use_synthetic(args.synthetic)
    from lab import backend, feed, training
    from lab.hparams import validate

    runtime = backend.runtime()
    hp = validate(model=args.model, epochs=args.epochs, batch_size=args.batch_size, **settings(args.augment))
    print(f"Vision Lab: augmentation on the device vs on the host · {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"  {runtime.backend} on {runtime.device_count} × {runtime.device_kind}, {runtime.policy}; "
          f"{args.model}, batch {args.batch_size}, {args.epochs} epochs, "
          f"{'synthetic %d' % args.synthetic if args.synthetic else 'digits'}; augment: {' '.join(args.augment)}")
    results = {"host": [], "device": []}
    order = [("host", "0"), ("device", "1")]
    for round_ in range(args.rounds + 1):  # round 0 compiles and warms up, not counted
        for name, env in (order if round_ % 2 == 0 else order[::-1]):
            os.environ[feed.DEVICE_AUGMENT_ENV] = env
            log = training.TrainingLog()
            t0 = time.perf_counter()
            training.fit(hp, runtime, log)
            wall = time.perf_counter() - t0
            row = {"img_s": log.progress.images_per_sec, "wall_s": round(wall, 2),
                   "val_accuracy": round(log.rows[-1].get("val_accuracy", float("nan")), 4), "input": log.progress.input}
            print(f"  {'warm' if round_ == 0 else round_:>4}  {name:<6} {row['img_s']:>10,.0f} img/s  "
                  f"{wall:6.2f} s  val acc {row['val_accuracy']:.3f}  ({row['input']})")
            if round_:
                results[name].append(row)
    med = {name: statistics.median(r["img_s"] for r in rows) for name, rows in results.items()}
    ratio = med["device"] / med["host"]
    print(f"median training images/s: host {med['host']:,.0f}, device {med['device']:,.0f}")
    print(f"RATIO device / host = {ratio:.2f}")
    print("RESULT " + json.dumps({"backend": runtime.backend, "device": runtime.device_kind, "ratio": round(ratio, 3),
                                  "median_img_s": med, "fits": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
