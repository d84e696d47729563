"""Training throughput of the default models on the JAX and TensorFlow backends, as a ratio.

The backend is fixed when Keras is imported, so each backend trains in its own subprocess
(bench/train_overhead.py's lab side: lab.training.fit, compilation excluded). One run prints
images/s for each backend and the ratio JAX / TensorFlow per model.

    python bench/backend_throughput.py [--models mlp small_cnn] [--epochs 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import json, sys, time
from lab import backend
backend.configure(sys.argv[1])
import keras
from lab import training
from lab.hparams import validate

class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None): self.t = []
    def on_epoch_end(self, epoch, logs=None): self.t.append(time.perf_counter())

rt = backend.runtime()
out = {}
for name in sys.argv[3:]:
    timer = EpochTimer()
    hp = validate(model=name, epochs=int(sys.argv[2]))
    real_fit = keras.Model.fit
    keras.Model.fit = lambda self, *a, **k: real_fit(self, *a, **{**k, "callbacks": [*k.get("callbacks", []), timer]})
    log = training.TrainingLog()
    training.fit(hp, rt, log)
    keras.Model.fit = real_fit
    steps = log.progress["steps_per_epoch"]
    gaps = sorted(b - a for a, b in zip(timer.t, timer.t[1:]))  # epoch 1 (compilation) is not timed
    out[name] = steps * hp.batch_size / gaps[len(gaps) // 2]
print("RESULT " + json.dumps({"backend": rt.backend, "ips": out}))
"""


def measure(backend_name: str, models: list[str], epochs: int) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", CHILD, backend_name, str(epochs), *models], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"{backend_name} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[7:])["ips"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["mlp", "small_cnn"])
    p.add_argument("--epochs", type=int, default=8)
    args = p.parse_args()
    tf_ips = measure("tensorflow", args.models, args.epochs)
    jax_ips = measure("jax", args.models, args.epochs)
    print(f"{'model':<12}{'tensorflow img/s':>18}{'jax img/s':>12}{'jax/tf':>9}")
    for m in args.models:
        print(f"{m:<12}{tf_ips[m]:>18,.0f}{jax_ips[m]:>12,.0f}{jax_ips[m] / tf_ips[m]:>9.2f}")
    print("(median epoch after the first, validation included; one run on a noisy machine: compare ratios, not absolutes)")


if __name__ == "__main__":
    main()
