"""What every dataset module shares: the `Dataset` arrays, `DatasetError`, and how each built-in
dataset's images look and what its classes are called.

Both the registry (lab.datasets) and the loaders of downloaded datasets (lab.downloads) import
this module, and it imports neither: the built-ins are declared here, loaded there. Light: numpy
and lab.images only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.images import ImageLook


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


FLOWER_SIZE = 96
# How each built-in dataset's images look; the Try tab makes every picture look the same way.
DIGITS_LOOK = ImageLook(8, 8, 1, light_on_dark=True, fit_to_content=True)
# MNIST digits are scaled into a 20x20 box centred in 28x28: a 4-pixel margin (0.2 of 20).
MNIST_LOOK = ImageLook(28, 28, 1, light_on_dark=True, fit_to_content=True, margin=0.2)
FASHION_LOOK = ImageLook(28, 28, 1, light_on_dark=True, fit_to_content=False)
CIFAR10_LOOK = ImageLook(32, 32, 3)
FLOWERS_LOOK = ImageLook(FLOWER_SIZE, FLOWER_SIZE, 3)

# Each built-in dataset's classes, in label order (a test checks the loaders give the same).
DIGIT_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
