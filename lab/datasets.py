"""DATASETS registry: name -> loader giving uint8 images, labels, class names and their look.

Every dataset declares how its images look (`ImageLook`) and its class names up front (in
lab.dataset_base, which lab.downloads shares), so the Try tab can turn a webcam frame or a
drawing into the same kind of input the model was trained on, and the Train tab can size a
model without loading anything.

`digits` is bundled and works offline. The others are downloaded on first use through Keras'
own code (lab.downloads: cache, subsets, progress, offline messages). A failed load raises
`DatasetError` and is not cached: the next load tries again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

# Dataset, DatasetError and the built-ins' looks live one module down (lab.downloads uses them
# too); they are re-exported here, where callers have always found them.
from lab.dataset_base import (  # noqa: F401
    CIFAR10_CLASSES,
    CIFAR10_LOOK,
    DIGIT_CLASSES,
    DIGITS_LOOK,
    FASHION_CLASSES,
    FASHION_LOOK,
    FLOWER_CLASSES,
    FLOWER_SIZE,
    FLOWERS_LOOK,
    MNIST_LOOK,
    Dataset,
    DatasetError,
)
from lab.images import ImageLook

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    load: Callable[[], Dataset]
    # Declared up front: the Train tab sizes models, and the Data tab names classes, without downloading anything.
    look: ImageLook
    class_names: tuple[str, ...]
    download_mb: int = 0  # megabytes downloaded on first use; 0 = bundled, works offline

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _load_digits() -> Dataset:
    path = SAMPLE_DATA / "digits.npz"
    if not path.exists():
        raise DatasetError(f"{path.name} is missing from sample_data/; run python scripts/make_sample_data.py")
    with np.load(path, allow_pickle=False) as f:
        x, y, names = f["images"], f["labels"].astype(np.int64), tuple(str(n) for n in f["class_names"])
    if x.shape[1:] != DIGITS_LOOK.shape():
        raise DatasetError(f"{path.name} holds images of shape {x.shape[1:]}, not {DIGITS_LOOK.shape()}; "
                           "run python scripts/make_sample_data.py")
    return Dataset("digits", x, y, names, DIGITS_LOOK)


def _downloaded(name: str) -> Callable[[], Dataset]:
    """The loader of a downloaded dataset; lab.downloads (and Keras) are imported on first use."""

    def load() -> Dataset:
        from lab import downloads

        return getattr(downloads, f"load_{name}")()

    return load


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(
        "digits",
        "1,797 real handwritten digits, 8×8 grey (scikit-learn's bundled set). Trains in seconds on a CPU.",
        _load_digits,
        DIGITS_LOOK,
        DIGIT_CLASSES,
    ),
    "mnist": DatasetSpec(
        "mnist",
        "The classic MNIST handwritten digits, 28×28 grey: the digits in more detail, where a CNN beats an MLP.",
        _downloaded("mnist"),
        MNIST_LOOK,
        DIGIT_CLASSES,
        download_mb=11,
    ),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist",
        "Fashion-MNIST: 28×28 grey photos of 10 kinds of clothing; harder than digits, shirts and T-shirts get confused.",
        _downloaded("fashion_mnist"),
        FASHION_LOOK,
        FASHION_CLASSES,
        download_mb=31,
    ),
    "cifar10": DatasetSpec(
        "cifar10",
        "CIFAR-10: tiny 32×32 colour photos of 10 animals and vehicles; real-world and hard, good for CNNs and augmentation.",
        _downloaded("cifar10"),
        CIFAR10_LOOK,
        CIFAR10_CLASSES,
        download_mb=170,
    ),
    "flowers": DatasetSpec(
        "flowers",
        "Photos of 5 kinds of flowers at 96×96 colour: few images per class, so watch overfitting and try flips and zoom.",
        _downloaded("flowers"),
        FLOWERS_LOOK,
        FLOWER_CLASSES,
        download_mb=229,
    ),
}


@functools.lru_cache(maxsize=8)
def load(name: str) -> Dataset:
    """Load a registered dataset once per process (the arrays are read-only and shared).

    A load that raises is not cached (lru_cache keeps only results), so it is retried next
    time. VISION_LAB_SUBSET and KERAS_HOME count at a dataset's first successful load.
    """
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
