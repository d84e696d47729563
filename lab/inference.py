"""Image in, top classes out: the Try tab's path and the /predict endpoint's.

The image goes through `lab.images.prepare` with the look of the dataset the run was trained
on, so a digit drawn black on white reaches the model as a light-on-dark 8x8 digit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from lab.images import enlarge, prepare, read_image


@dataclass(frozen=True)
class Prediction:
    label: str
    confidences: dict[str, float]  # every class -> probability, most likely first
    ms: float  # preprocessing + model time, in milliseconds
    view: np.ndarray  # the model's-eye view, enlarged for people

    def as_dict(self) -> dict:
        return {"label": self.label, "confidences": self.confidences, "ms": round(self.ms, 2)}


def predict(run, source) -> Prediction:
    """Classify one image with a loaded run.

    Args:
        run: a lab.runs.LoadedRun.
        source: anything lab.images.read_image accepts (path, bytes, PIL image, array).

    Raises:
        lab.images.ImageError: the input is not a usable image (message is for people).
    """
    t0 = time.perf_counter()
    image = read_image(source)
    x = prepare(image, run.info.look)
    probs = np.asarray(run.predict(x[None]))[0].astype(float)
    ms = (time.perf_counter() - t0) * 1000
    order = np.argsort(-probs)
    names = run.info.class_names
    confidences = {names[i]: float(probs[i]) for i in order}
    return Prediction(names[order[0]], confidences, ms, enlarge(x))
