"""Reading student-supplied images safely and turning them into model input.

Part of the engine: no gradio, no keras. `read_image` accepts whatever an
upload, a sketchpad, or a test hands over and returns a plain RGB or L image,
or raises `ImageError` with a message a student can act on. `prepare` turns
that image into exactly the array a model was trained on.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

NOT_AN_IMAGE = "That file is not an image we can read (PNG, JPEG, GIF, WebP, BMP)."
TRUNCATED = "That image file is incomplete (truncated) or damaged; try saving it again."

# Below this ink contrast (out of 255) an image counts as blank: paper grain
# and JPEG noise stay under it, a faint pencil line does not.
MIN_INK_CONTRAST = 40
# Ink pixels must also reach this fraction of the strongest ink, so shadows
# and smudges far weaker than the strokes do not stretch the crop.
MIN_INK_FRACTION = 0.15

# Hostile or careless uploads must not sink a shared server (a 1 KB WebP can hold 33 megapixels):
# every picture is refused over MAX_PIXELS (as decoded: a JPEG is decoded at a fraction of its size
# when that still leaves MAX_SIDE pixels), and shrunk to at most MAX_SIDE pixels a side as it is
# decoded, before any float conversion. Models take at most a few hundred pixels a side.
MAX_PIXELS = 16_000_000
MAX_SIDE = 1024
# At most this many pictures over BIG_DECODE pixels are decoded at once in the whole process
# (the Try tab, /predict and zip imports together), so memory stays bounded however many arrive.
BIG_DECODE = 4_000_000
_BIG_DECODES = threading.BoundedSemaphore(2)
# A backstop for pictures Gradio decodes itself before the lab sees them (webcam frames, drawings:
# components that hand over arrays, decoded with Pillow's warnings off): Pillow refuses to open
# anything over twice this, 100 MP instead of its default 179 MP. read_image refuses from 50 MP at
# open and decides below that with its own checks (after a JPEG's draft: big phone photos still work).
Image.MAX_IMAGE_PIXELS = 50_000_000


class ImageError(ValueError):
    """An image could not be used; the message is meant for the student."""


@dataclass(frozen=True)
class ImageLook:
    """How a dataset's images look, so any picture can be made to match.

    The value range is the same for every dataset: stored as uint8 0..255, fed to models as
    float 0..1 (`to_model_range`), so it is not a field.
    """

    height: int
    width: int
    channels: int  # 1 (grayscale) or 3 (RGB)
    light_on_dark: bool = False  # e.g. digits: light strokes on black
    fit_to_content: bool = False  # crop to the drawn object, pad to square
    # With fit_to_content: empty border around the object, as a fraction of its size per side.
    # The 8x8 digits fill their box (0); MNIST centres a 20-pixel digit in 28 pixels (0.2).
    margin: float = 0.0

    def shape(self) -> tuple:
        """The model input shape (height, width, channels)."""
        return (self.height, self.width, self.channels)


# The single definition of the model's input range: a uint8 pixel p is fed as p / PIXEL_MAX, which
# lies in MODEL_RANGE. Prediction scales with to_model_range (numpy), training with its tf.data twin
# lab.pipeline.to_model_range; both divide by PIXEL_MAX, so they cannot drift apart.
PIXEL_MAX = 255.0
MODEL_RANGE = (0.0, 1.0)


def to_model_range(x: np.ndarray) -> np.ndarray:
    """Map uint8 pixels 0..255 to float32 0..1 (see PIXEL_MAX)."""
    return np.asarray(x, dtype=np.float32) / np.float32(PIXEL_MAX)


def read_image(source, *, max_bytes: int = 20_000_000, max_pixels: int = MAX_PIXELS,
               max_side: int | None = MAX_SIDE) -> Image.Image:
    """Load an image from a path, bytes, file object, PIL image or array.

    Returns a fully decoded PIL image in mode "RGB" or "L", upright (EXIF
    orientation applied), transparency composited over white, first frame of
    an animation, and no bigger than `max_side` pixels a side (shrunk keeping its
    shape; None keeps the full size). Raises ImageError for anything unreadable or
    over `max_bytes` / `max_pixels` (checked from the header, before decoding).
    """
    if isinstance(source, np.ndarray):
        return _shrunk(_from_array(source, max_pixels), max_side)
    try:
        with warnings.catch_warnings():
            # Pillow only warns up to twice its own limit; we want a refusal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if isinstance(source, Image.Image):
                _check_pixels(source.size, max_pixels)
                with _decoding(source.size):
                    source.load()  # a lazily opened image may still be truncated
                    image = _shrunk(source, max_side)
            else:
                # Decoding from memory means no file handle outlives this call.
                with Image.open(io.BytesIO(_read_bytes(source, max_bytes))) as im:
                    im.seek(0)
                    _draft(im, max_side)  # a JPEG decodes straight to a smaller size
                    _check_pixels(im.size, max_pixels)  # before the costly decode
                    with _decoding(im.size):
                        im.load()
                        image = _shrunk(im, max_side)
                    if image is im:
                        image = im.copy()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"That image is too large; the limit is {max_pixels / 1e6:g} megapixels.") from None
    except UnidentifiedImageError:
        raise ImageError(NOT_AN_IMAGE) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error):
        # Pillow reports broken or cut-off data through any of these.
        raise ImageError(TRUNCATED) from None
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not cost the picture
        pass
    return _normalise_mode(image)


def decoded_pixels(path, max_side: int | None = MAX_SIDE) -> int | None:
    """How many pixels `read_image(path)` would decode, read from the header alone (cheap).

    None when the file is not an image Pillow recognises (read_image will say why). Used to
    refuse a zip whose pictures add up to too much decoding work before decoding any of them.
    """
    size = decoded_size(path, max_side)
    return None if size is None else size[0] * size[1]


def decoded_size(path, max_side: int | None = MAX_SIDE) -> tuple[int, int] | None:
    """(width, height) that `read_image(path)` would decode (a big JPEG in draft mode), from the header.

    None when Pillow does not recognise the file; (2**31, 2**31) for a decompression bomb, which is
    over any limit (read_image refuses it from the header too).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _draft(im, max_side)
                return im.size
    except Image.DecompressionBombError:
        return (2**31, 2**31)
    except Exception:  # anything else unreadable: read_image decides what it is
        return None


def prepare(image: Image.Image, look: ImageLook) -> np.ndarray:
    """Turn an image into model input: float32, shape look.shape(), 0..1.

    Matches the training images' look: colour or gray, light-on-dark, and
    (for datasets made that way) cropped to the object and area-averaged.
    A blank image gives all zeros when fit_to_content is set. An image bigger than
    MAX_SIDE a side is shrunk first (read_image already does), so the float arrays
    here stay small whatever arrives.
    """
    image = _normalise_mode(_shrunk(image, MAX_SIDE)).convert("L" if look.channels == 1 else "RGB")
    pixels = np.asarray(image, dtype=np.float32).reshape(image.height, image.width, -1)
    gray = pixels.mean(axis=-1) if look.channels == 3 else pixels[..., 0]
    if look.light_on_dark and np.median(_border(gray)) > 127.5:
        pixels, gray = 255.0 - pixels, 255.0 - gray
    if look.fit_to_content:
        out = _fit_to_content(pixels, gray, look)
    else:
        u8 = np.rint(pixels).astype(np.uint8)
        small = Image.fromarray(u8[..., 0] if look.channels == 1 else u8)
        out = np.asarray(small.resize((look.width, look.height), Image.Resampling.LANCZOS))
    return to_model_range(out.reshape(look.shape()))


def enlarge(x: np.ndarray, size: int = 160) -> np.ndarray:
    """Blow a model input up with hard pixel edges: the "model's-eye view".

    Accepts float 0..1 (what `prepare` returns) or uint8, shape HxW, HxWx1
    or HxWx3; returns uint8 HxW (gray) or HxWx3 with the longer side = size.
    """
    x = np.asarray(x)
    if x.dtype != np.uint8:
        x = np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    h, w = x.shape[:2]
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(x).resize(new, Image.Resampling.NEAREST))


# --- helpers ---------------------------------------------------------------


def _read_bytes(source, max_bytes: int) -> bytes:
    too_big = f"That file is too large (over {max_bytes / 1e6:g} MB)."
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError("We could not find that image file.")
        if path.stat().st_size > max_bytes:
            raise ImageError(too_big)
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read(max_bytes + 1)  # never slurp more than the limit
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError(NOT_AN_IMAGE)
    else:
        raise ImageError(NOT_AN_IMAGE)
    if len(data) > max_bytes:
        raise ImageError(too_big)
    if not data:
        raise ImageError("That file is empty.")
    return bytes(data)


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise ImageError(
            f"That image is too large ({w}x{h} pixels); the limit is {max_pixels / 1e6:g} megapixels."
        )
    if w < 1 or h < 1:
        raise ImageError("That image is empty (0 pixels).")


def _draft(im: Image.Image, max_side: int | None) -> None:
    """Ask a JPEG to decode at 1/2, 1/4 or 1/8 size when that still leaves max_side a side."""
    if max_side and im.format == "JPEG" and max(im.size) > max_side:
        try:
            im.draft(None, (max_side, max_side))
        except Exception:  # drafting is an optimisation only
            pass


def _decoding(size: tuple[int, int]):
    """A slot for decoding a big picture (process-wide), or nothing for a small one."""
    return _BIG_DECODES if size[0] * size[1] > BIG_DECODE else contextlib.nullcontext()


def _shrunk(im: Image.Image, max_side: int | None) -> Image.Image:
    """`im` itself when it fits in max_side x max_side, else a shrunk copy with the same shape.

    Pillow's reduce() (box averaging by a whole factor) first, then Lanczos: fast and good,
    and never a float copy of the full-size picture. Odd modes (palette, 16-bit, CMYK) are
    converted first, so transparency and levels survive the resampling.
    """
    w, h = im.size
    if not max_side or max(w, h) <= max_side:
        return im
    if im.mode not in ("RGB", "L", "RGBA", "LA"):
        im = _normalise_mode(im)
    scale = max_side / max(w, h)
    size = (max(1, min(max_side, round(w * scale))), max(1, min(max_side, round(h * scale))))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _from_array(a: np.ndarray, max_pixels: int) -> Image.Image:
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))):
        raise ImageError(f"That array is not an image (shape {a.shape}).")
    _check_pixels((a.shape[1], a.shape[0]), max_pixels)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float64))
        # Floats are 0..1 by convention, but 0..255 floats are common too.
        a = a * 255.0 if a.max(initial=0.0) <= 1.0 else a
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = _stretch_to_uint8(a)
    return _normalise_mode(Image.fromarray(np.ascontiguousarray(a)))


def _stretch_to_uint8(a: np.ndarray) -> np.ndarray:
    # High-bit-depth pixels mean nothing in absolute terms (a 12-bit camera
    # and a 16-bit scanner differ), so the image's own range is used.
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.full(a.shape, 255 if lo > 0 else 0, dtype=np.uint8)
    # In slices of about a megapixel: a float64 copy of a whole 16-megapixel picture is 128 MB.
    out = np.empty(a.shape, dtype=np.uint8)
    rows = max(1, 1_000_000 // max(1, a[0].size)) if a.ndim > 1 else len(a)
    for i in range(0, len(a), rows):
        out[i : i + rows] = np.rint((a[i : i + rows].astype(np.float64) - lo) * (255.0 / (hi - lo)))
    return out


def _normalise_mode(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_stretch_to_uint8(np.asarray(im)))
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        # Sketchpads draw black strokes on a transparent canvas: over white
        # they read as ink on paper, which is what a student means.
        gray = im.mode in ("LA", "La", "L", "1")
        rgba = im.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return flat.convert("L" if gray else "RGB")
    if im.mode in ("RGB", "L"):
        return im
    return im.convert("L" if im.mode == "1" else "RGB")


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=256, range=(0.0, 256.0))
    p = hist / max(hist.sum(), 1)
    omega = np.cumsum(p)
    mu = np.cumsum(p * edges[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    return float(edges[int(np.nanargmax(between))]) if np.isfinite(between).any() else 0.0


def _fit_to_content(pixels: np.ndarray, gray: np.ndarray, look: ImageLook) -> np.ndarray:
    # Work in "ink" units (distance from the paper), which makes the steps
    # the same for light-on-dark and dark-on-light pictures.
    paper = np.median(np.stack([_border(pixels[..., c]) for c in range(pixels.shape[-1])], -1), axis=0)
    ink = np.abs(pixels - paper)
    ink_gray = np.abs(gray - float(np.median(_border(gray))))
    strongest = float(ink_gray.max())
    if strongest < MIN_INK_CONTRAST:
        return np.zeros(look.shape(), dtype=np.uint8)
    mask = ink_gray > max(_otsu(ink_gray), MIN_INK_FRACTION * strongest)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    # Below-threshold pixels (paper grain, shadows) become exactly 0.
    crop = np.where(mask[..., None], ink, 0.0)[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    h, w = crop.shape[:2]
    aspect = look.width / look.height
    out_h = max(1, round(max(h, w / aspect) * (1 + 2 * look.margin)))
    out_w = max(1, round(out_h * aspect))
    canvas = np.zeros((out_h, out_w, crop.shape[2]), dtype=np.float32)
    y0, x0 = (out_h - h) // 2, (out_w - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = crop

    # BOX = area averaging, the way the 8x8 digits were made from 32x32 bitmaps.
    small = np.stack(
        [np.asarray(Image.fromarray(canvas[..., c]).resize((look.width, look.height), Image.Resampling.BOX))
         for c in range(canvas.shape[2])],
        axis=-1,
    )
    peak = float(small.max())
    if peak <= 0:
        return np.zeros(look.shape(), dtype=np.uint8)
    out = np.clip(np.rint(small * (255.0 / peak)), 0, 255)
    if not look.light_on_dark and np.median(_border(gray)) > 127.5:
        out = 255.0 - out  # back to dark ink on light paper
    return out.astype(np.uint8)
