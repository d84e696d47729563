"""Regenerate Vision Lab's bundled sample data from scikit-learn's digits.

The app ships a small, offline dataset so a class can start training without
downloading anything. It is built from scikit-learn's bundled handwritten
digits (``sklearn.datasets.load_digits``: 1797 images, 8x8 pixels, values
0..16, light strokes on a dark background). This script is the only place in
the project that uses scikit-learn; the app itself only reads the files
written here.

Outputs (the same bytes on every run):

* ``sample_data/digits.npz`` with
    - ``images``: uint8, shape (N, 8, 8, 1), scaled from 0..16 to 0..255
      (still light digit on dark background, as scikit-learn has them);
    - ``labels``: int64, shape (N,);
    - ``class_names``: str array ``"0"`` .. ``"9"``.
* ``sample_data/examples/digit_<label>.png``: a few example pictures for the
  app's "Try" tab, made to look like a photo or scan of a handwritten digit
  (dark ink on slightly uneven off-white paper, 160x160 RGB).

Run from the repository root::

    python scripts/make_sample_data.py
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "sample_data"
EXAMPLES_DIR = OUT_DIR / "examples"

EXAMPLE_LABELS = (0, 2, 3, 5, 7, 9)
# Examples come from the last 200 samples only. A teacher who wants a clean
# "never seen in training" demo can hold those out (e.g. a last-200 test
# split); nothing in this script enforces that.
EXAMPLE_POOL = 200
CANVAS = 160
DIGIT_SIZE = 112  # height of the 8x8 digit on the 160 px canvas: a paper margin
SEED = 1234


def build_dataset() -> dict[str, np.ndarray]:
    """Return the arrays stored in digits.npz."""
    digits = load_digits()
    # 16 -> 255 exactly; rounding keeps the mapping monotone and reproducible.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    class_names = np.array([str(i) for i in range(10)])
    return {"images": images, "labels": labels, "class_names": class_names}


def render_example(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Draw one 8x8 digit (uint8, light on dark) as dark ink on paper."""
    # A one-pixel empty border lets strokes that touch the 8x8 edge fade out
    # smoothly instead of ending in a hard cut after upscaling.
    padded = np.pad(digit[..., 0], 1)
    size = DIGIT_SIZE * padded.shape[0] // digit.shape[0]
    ink = Image.fromarray(padded).resize((size, size), Image.Resampling.BICUBIC)
    ink = np.asarray(ink, dtype=np.float32) / 255.0

    # Paper: off-white with a gentle lighting gradient and a little grain.
    yy, xx = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32) / CANVAS
    angle = rng.uniform(0, 2 * np.pi)
    shade = 1.0 - 0.07 * (np.cos(angle) * xx + np.sin(angle) * yy)
    paper_tint = np.array([242.0, 238.0, 226.0], dtype=np.float32)
    paper = shade[..., None] * paper_tint
    # Coarse grain (4x4 blocks) looks like paper texture and compresses well.
    grain = rng.normal(0.0, 2.5, size=(CANVAS // 4, CANVAS // 4, 1))
    paper = paper + np.kron(grain, np.ones((4, 4, 1))).astype(np.float32)

    full_ink = np.zeros((CANVAS, CANVAS), dtype=np.float32)
    top = (CANVAS - size) // 2 + int(rng.integers(-6, 7))
    left = (CANVAS - size) // 2 + int(rng.integers(-6, 7))
    full_ink[top : top + size, left : left + size] = np.clip(ink, 0, 1)

    pen = np.array([38.0, 40.0, 58.0], dtype=np.float32)  # blue-black ballpoint
    alpha = full_ink[..., None]
    rgb = paper * (1.0 - alpha) + pen * alpha
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB")


def pick_examples(images: np.ndarray, labels: np.ndarray) -> list[int]:
    """Indices of one sample per EXAMPLE_LABELS, taken from the end of the data.

    Within the last EXAMPLE_POOL samples, the one closest to its class's
    average shape is chosen, so the demo pictures are clear, typical digits.
    """
    flat = images.reshape(len(images), -1).astype(np.float64)
    start = len(labels) - EXAMPLE_POOL
    picks = []
    for label in EXAMPLE_LABELS:
        mean = flat[labels == label].mean(axis=0)
        candidates = start + np.flatnonzero(labels[start:] == label)
        distances = np.linalg.norm(flat[candidates] - mean, axis=1)
        picks.append(int(candidates[np.argmin(distances)]))
    return picks


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def main() -> None:
    data = build_dataset()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    # np.savez (not _compressed) keeps the file byte-identical across runs;
    # the whole dataset is only ~120 KB anyway.
    np.savez(OUT_DIR / "digits.npz", **data)

    EXAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for index in pick_examples(data["images"], data["labels"]):
        label = int(data["labels"][index])
        path = EXAMPLES_DIR / f"digit_{label}.png"
        path.write_bytes(png_bytes(render_example(data["images"][index], rng)))
        print(f"wrote {path.relative_to(ROOT)} (sample #{index}, {path.stat().st_size} bytes)")
    print(f"wrote {(OUT_DIR / 'digits.npz').relative_to(ROOT)}: {len(data['labels'])} images")


if __name__ == "__main__":
    main()
