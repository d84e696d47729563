"""Install what a Colab runtime lacks, without touching what it ships (the notebook runs it).

Colab's GPU and CPU runtimes ship TensorFlow, Keras, plotly, pandas and pillow; its TPU runtime
ships JAX and Keras but no TensorFlow and no Gradio. Installing tensorflow-cpu next to Colab's own
tensorflow would break it, so each package is added only where it is missing.

    pip install --no-deps vision-lab   # the lab itself (its dependencies would replace Colab's TensorFlow)
    python -m lab.colab                # then what this runtime lacks; prints what it installs

Part of the engine's lowest layer: no gradio, no keras, no other lab module (it runs before they exist).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

# (module to look for, what to pip install when it is missing)
NEEDED = [
    ("gradio", "gradio>=6.24,<7"),
    ("plotly", "plotly>=5.24"),
    ("keras", "keras>=3.13,<4"),
    ("pandas", "pandas>=2.1"),
    ("PIL", "pillow>=10"),
    # tf.data feeds every backend; on the TPU runtime the CPU wheel is enough (JAX drives the TPU)
    ("tensorflow", "tensorflow-cpu>=2.18,<3"),
    # every run's curves as TensorBoard event files (%tensorboard --logdir runs)
    ("tensorboard", "tensorboard>=2.18,<3"),
]


def missing(find_spec=importlib.util.find_spec) -> list[str]:
    """The pip requirements for the modules this Python cannot import."""
    return [req for module, req in NEEDED if find_spec(module) is None]


def main() -> None:
    todo = missing()
    if not todo:
        print("Vision Lab: everything it needs is already installed.")
        return
    print("Vision Lab: installing", ", ".join(todo), flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *todo], check=True)


if __name__ == "__main__":
    main()
