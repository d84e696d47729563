#!/usr/bin/env python
"""Latency of one prediction through the app's own path: lab.inference.predict(run, source).

A quick default run (default HParams, few epochs) is trained with lab.training.fit, saved by
lab.runs.RunStore into a temporary runs folder and loaded back with RunStore.load, exactly as
the Try tab and the /predict endpoint get it (LoadedRun.predict -> predict_on_batch, which
reuses one compiled predict function after the first call).

Two inputs:
  example  a PNG from sample_data/examples, passed as a path (what an upload hands over)
  webcam   a 480x640x3 uint8 numpy frame (what a Gradio webcam hands over): grey, noisy,
           unevenly lit paper with a dark hand-drawn digit, so the crop-to-content path does
           its full work (a blank frame would take a cheap early exit)

For each input: the first call after loading (builds the predict function) is reported on
its own, then --warmup calls are discarded and --iters calls are timed. Every timed
iteration also runs the same steps one by one, to show where the time goes:

  decode   lab.images.read_image(source)        (file read + PNG decode, or array -> PIL)
  prepare  lab.images.prepare(image, look)      (grey, polarity, crop to ink, 8x8 BOX)
  model    run.predict(x[None])                 (LoadedRun.predict: lock + predict_on_batch)
  rest     probabilities -> sorted dict, enlarge() (the model's-eye view for people)

Target: p50 of the end-to-end call under 30 ms.

    python bench/predict_latency.py
    python bench/predict_latency.py --iters 500 --backend jax
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_P50_MS = 30.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax"), help="Keras backend (default tensorflow)")
    p.add_argument("--train-epochs", type=int, default=3, help="epochs of the quick default run (default 3)")
    p.add_argument("--example", default=str(ROOT / "sample_data" / "examples" / "digit_3.png"), help="image file passed as a path")
    p.add_argument("--iters", type=int, default=200, help="timed calls per input (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="calls discarded before timing (default 20)")
    p.add_argument("--runs-dir", default=None, help="where to save the quick run (default: a temporary folder, removed after)")
    return p.parse_args(argv)


def webcam_frame(seed: int = 0):
    """480x640x3 uint8: a dark '3' drawn on grey paper under a lighting gradient, with sensor noise."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    h, w = 480, 640
    paper = Image.new("L", (w, h), 200)
    d = ImageDraw.Draw(paper)
    # a thick hand-drawn "3": two arcs, right of centre, a little tilted
    d.arc((250, 110, 390, 250), start=200, end=90, fill=40, width=22)
    d.arc((245, 230, 395, 380), start=270, end=160, fill=40, width=22)
    paper = paper.filter(ImageFilter.GaussianBlur(2))
    g = np.asarray(paper, np.float32)
    light = np.linspace(-25, 20, w, dtype=np.float32)[None, :] + np.linspace(-10, 10, h, dtype=np.float32)[:, None]
    tint = np.array([1.0, 0.97, 0.9], np.float32)  # warm indoor light
    frame = (g + light)[..., None] * tint + rng.normal(0, 4, (h, w, 3)).astype(np.float32)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def stats(ms):
    import numpy as np

    a = np.asarray(ms, dtype=float)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean()),
            "min": float(a.min()), "max": float(a.max())}


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lab import backend

    choice = backend.configure(args.backend)  # before anything imports keras
    import keras
    import numpy as np

    from lab import datasets, inference, training
    from lab.hparams import validate
    from lab.images import enlarge, prepare, read_image
    from lab.runs import RunStore

    if args.iters < 1 or args.warmup < 0:
        sys.exit("--iters must be at least 1 and --warmup at least 0")
    runtime = backend.runtime()
    hp = validate(epochs=args.train_epochs)
    data = datasets.load(hp.dataset)
    tmp = None if args.runs_dir else tempfile.TemporaryDirectory(prefix="bench-runs-")
    runs_dir = args.runs_dir or tmp.name
    print(f"Vision Lab predict latency · {time.strftime('%Y-%m-%d %H:%M')} · {platform.node()}")
    print(f"  Python {platform.python_version()}, Keras {keras.__version__} ({choice.backend}), "
          f"{runtime.summary()}, {os.cpu_count()} CPU cores visible")

    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min; {os.cpu_count()} cores)")
    t0 = time.perf_counter()
    log = training.TrainingLog()
    result = training.fit(hp, runtime, log)
    store = RunStore(runs_dir)
    run_id = store.save(owner="bench", hparams=hp, metrics=log.snapshot(), model=result.model,
                        class_names=result.class_names, look=data.look, state="done")
    t1 = time.perf_counter()
    run = store.load(run_id)
    t2 = time.perf_counter()
    acc = run.info.val_accuracy
    print(f"  quick run: model={hp.model} epochs={hp.epochs} val_accuracy={acc:.3f} "
          f"(train+save {t1 - t0:.1f} s, RunStore.load {(t2 - t1) * 1000:.0f} ms) in {runs_dir}")

    example = Path(args.example)
    frame = webcam_frame()
    sources = {f"example ({example.name}, path)": str(example), "webcam (480x640x3 uint8)": frame}

    def stages(source):
        """The steps of inference.predict, one by one (same functions, same order)."""
        a = time.perf_counter()
        image = read_image(source)
        b = time.perf_counter()
        x = prepare(image, run.info.look)
        c = time.perf_counter()
        probs = np.asarray(run.predict(x[None]))[0].astype(float)
        d = time.perf_counter()
        order = np.argsort(-probs)
        {run.info.class_names[i]: float(probs[i]) for i in order}
        enlarge(x)
        e = time.perf_counter()
        return [(b - a) * 1000, (c - b) * 1000, (d - c) * 1000, (e - d) * 1000]

    print(f"  {args.warmup} warm-up + {args.iters} timed calls per input; each iteration also times the stages once")
    print()
    rows, splits, firsts, answers = {}, {}, {}, {}
    for i, (name, source) in enumerate(sources.items()):
        if i == 0:  # the first call after RunStore.load builds the predict function
            a = time.perf_counter()
            inference.predict(run, source)
            firsts[name] = (time.perf_counter() - a) * 1000
        for _ in range(args.warmup):
            inference.predict(run, source)
            stages(source)
        e2e, reported, parts = [], [], []
        for _ in range(args.iters):
            a = time.perf_counter()
            pred = inference.predict(run, source)
            e2e.append((time.perf_counter() - a) * 1000)
            reported.append(pred.ms)
            parts.append(stages(source))
        rows[name] = (stats(e2e), stats(reported))
        splits[name] = np.asarray(parts)
        answers[name] = f"{pred.label} ({pred.confidences[pred.label]:.0%})"

    head = f"{'input':<30} {'p50 ms':>7} {'p95 ms':>7} {'mean ms':>8} {'min':>6} {'max':>7}  {'Prediction.ms p50':>17}  {'target p50 < 30 ms':>18}  answer"
    print("end to end: lab.inference.predict(run, source), wall time around the call")
    print(head)
    print("-" * len(head))
    ok = True
    for name, (s, rep) in rows.items():
        verdict = "MET" if s["p50"] < TARGET_P50_MS else "MISSED"
        ok &= verdict == "MET"
        print(f"{name:<30} {s['p50']:>7.2f} {s['p95']:>7.2f} {s['mean']:>8.2f} {s['min']:>6.2f} {s['max']:>7.2f}  "
              f"{rep['p50']:>17.2f}  {verdict:>18}  {answers[name]}")
    print("-" * len(head))
    for name, ms in firsts.items():
        print(f"first call after RunStore.load ({name}): {ms:.1f} ms (builds the predict function; once per loaded run)")
    print()
    print("where the time goes (same iterations, stages timed one by one; p50 / mean ms, share of summed means)")
    sh = f"{'input':<30}" + "".join(f"{h:>16}" for h in ("decode", "prepare", "model", "rest"))
    print(sh)
    print("-" * len(sh))
    for name, parts in splits.items():
        means = parts.mean(axis=0)
        cells = "".join(
            f" {np.percentile(parts[:, j], 50):>5.2f}/{means[j]:>5.2f} {means[j] / means.sum():>3.0%}" for j in range(4)
        )
        print(f"{name:<30}{cells}")
    print("-" * len(sh))
    print("decode = read_image; prepare = images.prepare; model = LoadedRun.predict (predict_on_batch); "
          "rest = sort + enlarge (outside Prediction.ms)")
    print()
    print(f"TARGET p50 < {TARGET_P50_MS:.0f} ms: {'MET' if ok else 'MISSED'} for "
          + ", ".join(f"{n.split(' ')[0]} {rows[n][0]['p50']:.2f} ms" for n in rows))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
