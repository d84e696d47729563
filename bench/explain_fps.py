#!/usr/bin/env python
"""Webcam frames per second on the Try tab's path, with and without the heatmap (issue 14).

A quick run is trained (--model, --train-epochs), saved and loaded back through lab.runs.RunStore as
the Try tab gets it. Each frame is predict_latency.py's 480x640x3 webcam frame (a dark "3" on grey,
unevenly lit, noisy paper), handled as the Try tab handles a webcam frame:

  off  lab.inference.predict(run, frame), then the model's view encoded as PNG
  on   lab.explain.explain(run, frame), then the view and the heatmap overlay encoded as PNG

(PNG encoding is what components/pictures.py does to show them; gradio itself is not imported.)
Rounds alternate off and on, so drift hits both; the ratio is of figures measured in this one run.
Target: at least 2 frames a second with the heatmap on (the webcam sends one every 0.4 s).

    python bench/explain_fps.py
    python bench/explain_fps.py --model resnet --backend jax
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
TARGET_FPS = 2.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax"))
    p.add_argument("--model", default="small_cnn", help="model of the quick run (default small_cnn)")
    p.add_argument("--train-epochs", type=int, default=2)
    p.add_argument("--frames", type=int, default=100, help="timed frames per round and mode (default 100)")
    p.add_argument("--rounds", type=int, default=3)
    return p.parse_args(argv)


def png(picture) -> int:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG", optimize=False)
    return len(buf.getvalue())


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lab import backend

    backend.configure(args.backend)
    import keras
    import numpy as np

    from lab import datasets, explain, inference, training
    from lab.hparams import validate
    from lab.runs import RunStore
    from predict_latency import webcam_frame

    hp = validate(model=args.model, epochs=args.train_epochs)
    data = datasets.load(hp.dataset)
    print(f"Vision Lab webcam fps with and without the heatmap · {time.strftime('%Y-%m-%d %H:%M')} · {platform.node()}")
    print(f"  Python {platform.python_version()}, Keras {keras.__version__} ({keras.backend.backend()}), "
          f"{os.cpu_count()} CPU cores visible, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as runs_dir:
        log = training.TrainingLog()
        result = training.fit(hp, backend.runtime(), log, data=data)
        store = RunStore(runs_dir)
        run = store.load(store.save(owner="bench", hparams=hp, metrics=log.snapshot(), model=result.model,
                                    class_names=result.class_names, look=data.look, state="done"))
        frame = webcam_frame()

        def off():
            pred = inference.predict(run, frame)
            png(pred.view)

        def on():
            ex = explain.explain(run, frame)
            png(ex.prediction.view)
            png(ex.overlay)

        t = time.perf_counter()
        on()
        first = (time.perf_counter() - t) * 1000
        for _ in range(10):  # warm-up
            off()
            on()
        fps = {"off": [], "on": []}
        for r in range(args.rounds):
            for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                fn = off if mode == "off" else on
                t = time.perf_counter()
                for _ in range(args.frames):
                    fn()
                fps[mode].append(args.frames / (time.perf_counter() - t))
        method = explain.explainer(run).method
    print(f"  quick run: {hp.model}, {hp.epochs} epochs, val_accuracy {run.info.val_accuracy:.3f}; method {method}; "
          f"first frame with heatmap after loading {first:.0f} ms (builds the gradient step; once per loaded run)")
    print(f"  {args.rounds} rounds x {args.frames} frames per mode, alternating")
    print()
    print(f"{'heatmap':<8} {'fps median':>10} {'fps min':>8} {'ms/frame':>9}")
    for mode in ("off", "on"):
        med = float(np.median(fps[mode]))
        print(f"{mode:<8} {med:>10.1f} {min(fps[mode]):>8.1f} {1000 / med:>9.1f}")
    ratio = float(np.median(fps["on"]) / np.median(fps["off"]))
    ok = float(np.median(fps["on"])) >= TARGET_FPS
    print()
    print(f"RATIO on/off: {ratio:.2f} (the heatmap's share of a frame's cost: {1 - ratio:.0%})")
    print(f"TARGET >= {TARGET_FPS:.0f} fps with the heatmap on: {'MET' if ok else 'MISSED'}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
