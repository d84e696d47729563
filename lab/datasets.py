"""DATASETS registry: name -> loader giving uint8 images, labels, class names and their look.

Every dataset declares how its images look (`ImageLook`), so the Try tab can turn a webcam
frame or a drawing into the same kind of input the model was trained on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from lab.images import ImageLook

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


class DatasetError(RuntimeError):
    """A dataset could not be loaded; the message says why and what still works."""


@dataclass(frozen=True)
class Dataset:
    name: str
    x: np.ndarray  # uint8, (N, H, W, C)
    y: np.ndarray  # int64, (N,)
    class_names: tuple[str, ...]
    look: ImageLook

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        per = np.bincount(self.y, minlength=self.num_classes)
        return {name: int(n) for name, n in zip(self.class_names, per)}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    load: Callable[[], Dataset]


def _load_digits() -> Dataset:
    path = SAMPLE_DATA / "digits.npz"
    if not path.exists():
        raise DatasetError(f"{path.name} is missing from sample_data/; run python scripts/make_sample_data.py")
    with np.load(path, allow_pickle=False) as f:
        x, y, names = f["images"], f["labels"].astype(np.int64), tuple(str(n) for n in f["class_names"])
    look = ImageLook(height=x.shape[1], width=x.shape[2], channels=x.shape[3], light_on_dark=True, fit_to_content=True)
    return Dataset("digits", x, y, names, look)


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(
        "digits",
        "1,797 real handwritten digits, 8×8 grey (scikit-learn's bundled set). Trains in seconds on a CPU.",
        _load_digits,
    ),
}


@functools.lru_cache(maxsize=8)
def load(name: str) -> Dataset:
    """Load a registered dataset once per process (the arrays are read-only and shared)."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    data = DATASETS[name].load()
    data.x.setflags(write=False)
    data.y.setflags(write=False)
    return data


def split(data: Dataset, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation), stratified by class so every class is measured.

    The same seed always gives the same split, so runs can be compared fairly.
    """
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in range(data.num_classes):
        idx = rng.permutation(np.flatnonzero(data.y == c))
        n_val = int(round(len(idx) * validation_split))
        if len(idx) > 1:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return rng.permutation(np.concatenate(train)), np.sort(np.concatenate(val))


def sample_grid(data: Dataset, per_class: int = 8, seed: int = 0, cell: int = 48) -> np.ndarray:
    """A uint8 image: one row per class, `per_class` random samples each, for the Data tab."""
    rng = np.random.default_rng(seed)
    h, w = data.x.shape[1:3]
    scale = max(1, cell // max(h, w))
    rows = []
    for c in range(data.num_classes):
        idx = np.flatnonzero(data.y == c)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        tiles = [np.kron(data.x[i], np.ones((scale, scale, 1), np.uint8)) for i in pick]
        tiles += [np.zeros((h * scale, w * scale, data.x.shape[3]), np.uint8)] * (per_class - len(tiles))
        pad = [np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=128) for t in tiles]
        rows.append(np.concatenate(pad, axis=1))
    grid = np.concatenate(rows, axis=0)
    return grid[..., 0] if grid.shape[-1] == 1 else grid
