"""A frozen backbone's features, computed once per dataset and kept in memory.

A frozen backbone turns an image into the same vector in every epoch, so a transfer model's new
head can train on those vectors: the backbone runs once per dataset instead of once per image per
epoch, and every epoch after that is a tiny Dense layer on small vectors (seconds on 2 CPU cores).

The cache is a small in-memory LRU keyed by what the features depend on: the dataset (name,
number of images and a digest of their pixels, so a re-uploaded dataset with the same name is not
confused with the old one), the model name, its input shape and a digest of the extractor's
weights. The weights digest tells ImageNet weights from random ones (VISION_LAB_PRETRAINED=0),
and random backbones built with different seeds from each other: features from one backbone
must never train a head that is saved on top of another. Nothing is written to disk: features
take seconds to recompute, and a disk cache would need invalidation and locking across processes.
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np
import tensorflow as tf

from lab.pipeline import to_model_range
from lab.storage import LRU

PHASE = "computing backbone features"
CACHE_ENTRIES = 8  # e.g. 2,000 images x 1,280 float32 features = 10 MB an entry
BATCH = 64  # images per predict step: amortizes each call; activations stay around 100 MB

# The training worker is one thread; the LRU's lock keeps a second caller safe anyway.
_cache: LRU[tuple, np.ndarray] = LRU(CACHE_ENTRIES)


def _digest(arrays) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def cache_key(extractor: keras.Model, data, model_name: str) -> tuple:
    """What the features of `data` through `extractor` depend on (see the module docstring)."""
    return (data.name, len(data.x), _digest([data.x]), model_name, tuple(extractor.input_shape[1:]),
            _digest(extractor.get_weights()))


class _Progress(keras.callbacks.Callback):
    """Reports the fraction done into log.progress and stops predicting when Stop is pressed."""

    def __init__(self, log, batches: int):
        super().__init__()
        self.log, self.batches = log, batches

    def on_predict_batch_end(self, batch, logs=None):
        self.log.progress.fraction = round(min(1.0, (batch + 1) / self.batches), 3)
        if self.log.stop.is_set():
            self.model.stop_predicting = True


def compute(extractor: keras.Model, x: np.ndarray, log) -> np.ndarray | None:
    """Features of every image of `x` (uint8, N x H x W x C), or None when Stop cut it short.

    Pixels are scaled to [0, 1] exactly as training does (lab.pipeline.to_model_range), batch by
    batch, so a large dataset is never held as floats all at once.
    """
    log.progress.update(phase=PHASE, fraction=0.0)
    batches = -(-len(x) // BATCH)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(BATCH)
    ds = ds.map(to_model_range).prefetch(tf.data.AUTOTUNE)
    out = extractor.predict(ds, verbose=0, callbacks=[_Progress(log, batches)])
    if log.stop.is_set() or len(out) != len(x):
        return None
    return np.asarray(out, np.float32)


def cached(extractor: keras.Model, data, model_name: str, log) -> np.ndarray | None:
    """Features of all of `data.x` (rows aligned with it): from the cache, or computed and cached.

    Returns None when Stop was pressed while computing (nothing is cached then).
    """
    key = cache_key(extractor, data, model_name)
    feats = _cache.get(key)
    if feats is not None:
        log.progress.update(phase=PHASE, fraction=1.0)
        return feats
    feats = compute(extractor, data.x, log)
    if feats is None:
        return None
    feats.setflags(write=False)  # shared by later jobs: nobody may change it in place
    _cache.put(key, feats)
    return feats


def clear() -> None:
    """Forget every cached feature array (tests; or to free memory)."""
    _cache.clear()
