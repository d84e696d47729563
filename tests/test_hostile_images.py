"""Issue 10, item 1: one small picture must not cost the server a gigabyte.

A 1.3 KB lossless WebP of 16383 x 2000 white pixels cost about 1 GB in `prepare` (a float32 copy
at full size before shrinking). Now: refused from its header over 16 megapixels; anything under
that is shrunk to 1,024 pixels a side as it is decoded; big decodes run two at a time at most.
"""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest
from PIL import Image

from lab import images
from lab.images import ImageError, ImageLook, decoded_pixels, prepare, read_image
from tests.hostile import MB, huge_webp, peak_rise

DIGITS = ImageLook(8, 8, 1, light_on_dark=True, fit_to_content=True)
COLOUR = ImageLook(96, 96, 3)


def test_huge_webp_is_refused_from_its_header_without_decoding(tmp_path):
    path = huge_webp(tmp_path / "huge.webp")
    assert path.stat().st_size < 2_000  # 1.3 KB on disk ...
    for look in (DIGITS, COLOUR):
        with pytest.raises(ImageError, match=r"too large \(16383x2000 pixels\); the limit is 16 megapixels"):
            prepare(read_image(path), look)
    refusal, rise = peak_rise(lambda: pytest.raises(ImageError, read_image, path))
    assert "16 megapixels" in str(refusal.value)
    assert rise < 20 * MB  # ... was 0.7 GB (digits) to 1.1 GB (colour) decoded and converted to float


def test_picture_just_under_the_limit_is_shrunk_before_any_float_copy(tmp_path):
    path = huge_webp(tmp_path / "wide.webp", (16383, 976))  # 15.99 megapixels: allowed
    image, rise = peak_rise(lambda: read_image(path))
    assert image.size == (1024, 61) and image.mode == "RGB"
    # Decoding a 16-megapixel WebP itself takes about 250 MB (Pillow's buffers); no float copy on top.
    assert rise < 400 * MB
    for look in (DIGITS, COLOUR):
        x, rise = peak_rise(lambda: prepare(read_image(path), look))
        assert x.shape == look.shape() and x.dtype == np.float32 and rise < 400 * MB
    assert np.all(prepare(read_image(path), COLOUR) == 1.0)  # white stays white
    assert not prepare(read_image(path), DIGITS).any()  # blank paper is no digit


def test_prepare_shrinks_a_big_image_handed_to_it_directly():
    big = Image.new("RGB", (4000, 3000), "white")
    x, rise = peak_rise(lambda: prepare(big, COLOUR))
    assert x.shape == (96, 96, 3) and rise < 100 * MB  # a float32 copy at full size was 144 MB


def test_jpeg_photo_is_decoded_at_a_fraction_of_its_size(tmp_path):
    path = tmp_path / "photo.jpg"
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(small).resize((4096, 3072)).save(path, quality=80)  # a 12.6-megapixel phone photo
    assert decoded_pixels(path) == 2048 * 1536  # decoded at half size: still over 1,024 a side
    image = read_image(path)
    assert image.size == (1024, 768)
    assert read_image(path, max_side=None).size == (4096, 3072)


def test_big_decodes_are_bounded_across_threads(tmp_path, monkeypatch):
    """Four at once (the Try tab, /predict and imports share one process) decode two at a time."""
    path = huge_webp(tmp_path / "wide.webp", (16383, 976))
    active, most = [0], [0]
    real = images._BIG_DECODES

    class Counting:
        def __enter__(self):
            real.acquire()
            active[0] += 1
            most[0] = max(most[0], active[0])

        def __exit__(self, *exc):
            active[0] -= 1
            real.release()

    monkeypatch.setattr(images, "_BIG_DECODES", Counting())
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        shapes, rise = peak_rise(lambda: list(pool.map(lambda _: prepare(read_image(path), COLOUR).shape, range(4))))
    assert shapes == [(96, 96, 3)] * 4 and most[0] == 2
    assert rise < 700 * MB  # two decodes' worth; four unbounded would take 1 GB


def test_header_lies_and_bombs_still_refused(tmp_path):
    """The old refusals hold with the lower limit: a 48-megapixel 1-bit PNG, an array, a PIL image."""
    path = tmp_path / "bits.png"
    Image.new("1", (8000, 6000)).save(path)
    for source in (path, np.zeros((5000, 4000), np.uint8), Image.new("L", (5000, 4000))):
        with pytest.raises(ImageError, match="16 megapixels"):
            read_image(source)


def test_shrinking_keeps_the_exif_orientation():
    import io

    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    for fmt in ("JPEG", "PNG", "WEBP"):
        buf = io.BytesIO()
        Image.new("RGB", (3000, 1500), "red").save(buf, fmt, exif=exif.tobytes())
        assert read_image(buf.getvalue()).size == (512, 1024), fmt  # shrunk, then stood upright
