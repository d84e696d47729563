#!/usr/bin/env python
"""Own pictures at their own size (issue 19): a zip of 3,000 28×28 grey pictures, trained by the lab
against a bare Keras fit of the same model on the same pictures at 28×28×1.

Before issue 19 every zip became 96×96 RGB: the lab took about 10× as long as a bare fit at 28×28×1,
for no accuracy. Now the zip's look is chosen from its pictures (lab.image_folder.choose_look).

- "lab, own size": the zip through lab.image_folder.import_zip (the look it chooses), then
  lab.training.fit as a job runs it (live metrics, validation every epoch).
- "lab, 96×96×3": the same, forcing the old look (import_zip(size=(96, 96))).
- "bare": small_cnn from models/ compiled alike, `model.fit` on the lab's training split as numpy
  arrays at 28×28×1, validation on the same held-out split, no callbacks.

The pictures are the bundled 8×8 digits, enlarged to 28×28 and shifted a pixel or two at random
(no network here). Times are wall seconds for the whole fit (compilation included), in one run;
the ratio lab/bare is the figure to read. Target: lab, own size within 1.5× of bare.

    python bench/own_pictures.py                 # TensorFlow backend
    python bench/own_pictures.py --backend jax
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_zip(path: Path, n: int, seed: int = 0) -> None:
    import numpy as np
    from PIL import Image

    digits = np.load(ROOT / "sample_data" / "digits.npz")
    x, y = digits["images"], digits["labels"]
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as z:
        for i in range(n):
            j = int(rng.integers(len(x)))
            img = Image.fromarray(np.asarray(x[j]).reshape(8, 8).astype(np.uint8)).resize((24, 24), Image.Resampling.BILINEAR)
            canvas = Image.new("L", (28, 28), 0)
            canvas.paste(img, (int(rng.integers(0, 5)), int(rng.integers(0, 5))))
            out = io.BytesIO()
            canvas.save(out, "PNG")
            z.writestr(f"{int(y[j])}/{i:05d}.png", out.getvalue())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax"))
    p.add_argument("--pictures", type=int, default=3000)
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args(argv)
    from lab import backend

    backend.configure(args.backend)
    rt = backend.runtime()
    import keras
    import numpy as np

    from lab import datasets, training
    from lab.hparams import validate
    from lab.image_folder import import_zip
    from lab.pipeline import loss_and_metrics
    from models import MODELS

    hp = validate({"model": "small_cnn", "epochs": args.epochs, "batch_size": 32})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = Path(tmp) / "digits.zip"
        make_zip(zip_path, args.pictures)
        for label, size in (("lab, own size", None), ("lab, 96×96×3", (96, 96))):
            t0 = time.perf_counter()
            data = import_zip(zip_path, Path(tmp) / "work", "digits", size=size).dataset
            imported = time.perf_counter() - t0
            log = training.TrainingLog()
            t0 = time.perf_counter()
            training.fit(hp, rt, log, data=data)
            took = time.perf_counter() - t0
            rows.append((label, "×".join(map(str, data.look.shape())), imported, took, log.rows[-1]["val_accuracy"]))
            if size is None:
                own = data

        # bare: the same model and split, numpy arrays at the pictures' own 28×28×1
        keras.utils.set_random_seed(hp.seed)
        train_idx, val_idx = datasets.split(own, hp.validation_split, hp.seed)
        xs = own.x.astype("float32") / 255.0
        model = MODELS["small_cnn"].build(own.look.shape(), own.num_classes, hp)
        loss, metrics = loss_and_metrics(False)
        model.compile(optimizer=keras.optimizers.Adam(hp.learning_rate), loss=loss, metrics=metrics)
        t0 = time.perf_counter()
        history = model.fit(xs[train_idx], own.y[train_idx], batch_size=hp.batch_size, epochs=hp.epochs, verbose=0,
                            validation_data=(xs[val_idx], own.y[val_idx]))
        took = time.perf_counter() - t0
        rows.append(("bare model.fit", "×".join(map(str, own.look.shape())), 0.0, took,
                     float(np.asarray(history.history["val_accuracy"][-1]))))

    print(f"{args.pictures:,} own 28×28 grey pictures, small_cnn, {args.epochs} epochs, {rt.summary()}")
    print(f"{'':<16} {'input':>9} {'import s':>9} {'fit s':>7} {'val acc':>8}")
    for label, shape, imported, took, acc in rows:
        print(f"{label:<16} {shape:>9} {imported:>9.2f} {took:>7.2f} {acc:>8.3f}")
    bare = rows[-1][3]
    print(f"lab (own size) / bare = {rows[0][3] / bare:.2f} (target ≤ 1.5); lab at 96×96×3 / bare = {rows[1][3] / bare:.2f}")


if __name__ == "__main__":
    main()
