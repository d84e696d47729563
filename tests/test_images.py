"""Tests for lab.images: safe reading of odd files and the model-input pipeline.

Every bad input is made here, in tmp_path, so each test shows exactly what
it feeds in.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile, features

from lab.images import ImageError, ImageLook, enlarge, prepare, read_image, to_model_range

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "sample_data" / "digits.npz"
EXAMPLES = ROOT / "sample_data" / "examples"
DIGIT_LOOK = ImageLook(8, 8, 1, light_on_dark=True, fit_to_content=True)


def noisy_rgb(w: int = 64, h: int = 64, seed: int = 0) -> Image.Image:
    # Noise does not compress, so cutting the file really loses pixel data.
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.fixture(scope="module")
def digits():
    with np.load(DIGITS) as data:
        return data["images"], data["labels"]


def render_on_paper(digit: np.ndarray, seed: int, size: int = 200, box: int = 120) -> Image.Image:
    """A training digit as a student's photo would show it: dark ink on noisy paper."""
    rng = np.random.default_rng(seed)
    padded = np.pad(digit[..., 0], 1)  # strokes fade out instead of being cut
    side = box * padded.shape[0] // digit.shape[0]
    ink = np.asarray(Image.fromarray(padded).resize((side, side), Image.Resampling.BICUBIC), np.float32)
    canvas = np.zeros((size, size), np.float32)
    top, left = rng.integers(10, size - side - 10, size=2)
    canvas[top : top + side, left : left + side] = ink
    paper = 240.0 - canvas * (210.0 / 255.0) + rng.normal(0.0, 6.0, canvas.shape)
    return Image.fromarray(np.clip(np.rint(paper), 0, 255).astype(np.uint8), "L")


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


# --- read_image: files that must be refused --------------------------------


def test_text_file_named_png_is_refused(tmp_path):
    path = tmp_path / "homework.png"
    path.write_text("this is not a picture\n")
    with pytest.raises(ImageError, match="not an image"):
        read_image(path)


def test_missing_and_empty_files_are_refused(tmp_path):
    with pytest.raises(ImageError, match="could not find"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image(tmp_path / "empty.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_refused(tmp_path, fmt):
    buf = io.BytesIO()
    noisy_rgb(200, 200).save(buf, fmt)
    whole = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(whole[: len(whole) // 2])
    assert read_image(whole).size == (200, 200)  # the uncut file is fine
    with pytest.raises(ImageError, match="truncated"):
        read_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bomb_header_claiming_huge_size_is_refused(tmp_path):
    # A tiny PNG whose header claims 100000 x 100000 pixels.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    assert path.stat().st_size < 200
    with pytest.raises(ImageError, match="too large"):
        read_image(path)


def test_real_one_bit_bomb_is_refused_before_decoding(tmp_path):
    # 48 megapixels: over our 16 MP limit but under Pillow's own bomb limit,
    # so only read_image's check stands in the way.
    path = tmp_path / "big.png"
    Image.new("1", (8000, 6000)).save(path)
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageError, match=r"8000x6000 pixels.*16 megapixels"):
        read_image(path)
    assert read_image(path, max_pixels=50_000_000, max_side=None).size == (8000, 6000)


def test_pixel_limit_applies_to_every_kind_of_source():
    small = Image.new("L", (20, 20))
    for source in (small, np.zeros((20, 20), np.uint8)):
        with pytest.raises(ImageError, match="20x20 pixels"):
            read_image(source, max_pixels=100)


def test_byte_limit(tmp_path):
    buf = io.BytesIO()
    noisy_rgb().save(buf, "PNG")
    data = buf.getvalue()
    path = tmp_path / "ok.png"
    path.write_bytes(data)
    for source in (path, str(path), data, io.BytesIO(data)):
        with pytest.raises(ImageError, match="too large"):
            read_image(source, max_bytes=len(data) - 1)
    assert read_image(io.BytesIO(data), max_bytes=len(data)).size == (64, 64)


def test_bad_arrays_are_refused():
    with pytest.raises(ImageError):
        read_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError):
        read_image(np.zeros((2, 4, 4, 3), np.uint8))


def test_path_reading_leaves_no_file_open(tmp_path):
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.exists():
        pytest.skip("needs /proc")
    path = tmp_path / "a.png"
    noisy_rgb().save(path)
    cut = tmp_path / "cut.png"
    cut.write_bytes(path.read_bytes()[:500])
    before = len(os.listdir(fd_dir))
    for _ in range(5):
        read_image(path)
        with pytest.raises(ImageError):
            read_image(cut)
    assert len(os.listdir(fd_dir)) == before


# --- read_image: odd but valid images ---------------------------------------


def test_animated_gif_uses_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    first, second = Image.new("L", (16, 16), 255), Image.new("L", (16, 16), 0)
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 2
    image = read_image(path)
    assert image.mode in ("L", "RGB")
    assert np.asarray(image.convert("L")).min() > 240


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_animated_webp_uses_first_frame(tmp_path):
    path = tmp_path / "anim.webp"
    first, second = Image.new("RGB", (16, 16), "white"), Image.new("RGB", (16, 16), "black")
    first.save(path, save_all=True, append_images=[second], duration=100, lossless=True)
    with Image.open(path) as check:
        assert check.n_frames == 2
    assert np.asarray(read_image(path).convert("L")).min() > 240


def test_sixteen_bit_png_is_scaled_by_its_own_range(tmp_path):
    # Values 1000..3000 of 65535 would be near-black if just divided by 257.
    ramp = np.linspace(1000, 3000, 64 * 32).reshape(32, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)  # uint16 -> mode "I;16"
    with Image.open(path) as raw:
        assert raw.mode in ("I;16", "I")
    image = read_image(path)
    pixels = np.asarray(image)
    assert image.mode == "L" and pixels.dtype == np.uint8
    assert pixels.min() == 0 and pixels.max() == 255
    assert np.all(np.diff(pixels.astype(int).ravel()) >= 0)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    image = Image.new("CMYK", (40, 40), (0, 0, 0, 0))  # no ink: white paper
    ImageDraw.Draw(image).rectangle([20, 0, 39, 39], fill=(0, 0, 0, 255))  # black
    image.save(path, "JPEG", quality=95)
    out = read_image(path)
    pixels = np.asarray(out, dtype=float)
    assert out.mode == "RGB"
    assert pixels[20, 5].min() > 230
    assert pixels[20, 35].max() < 40


def test_transparent_sketch_becomes_dark_on_white_then_bright_strokes(tmp_path):
    # What a sketchpad hands over: black strokes on a fully transparent
    # (0, 0, 0, 0) canvas. A plain RGB conversion would give black on black.
    sketch = Image.new("RGBA", (120, 120), (0, 0, 0, 0))
    ImageDraw.Draw(sketch).line([(60, 15), (60, 105)], fill=(0, 0, 0, 255), width=12)
    path = tmp_path / "sketch.png"
    sketch.save(path)
    image = read_image(path)
    pixels = np.asarray(image.convert("L"))
    assert image.mode in ("RGB", "L")
    assert pixels[5, 5] == 255 and pixels[60, 60] == 0

    x = prepare(image, DIGIT_LOOK)[..., 0]
    assert x.max() == pytest.approx(1.0)
    # A centred vertical bar: bright middle columns, empty outer columns.
    assert x[:, 3:5].mean() > 0.5
    assert x[:, [0, 7]].max() == 0.0


def test_palette_transparency_and_la_are_composited_over_white():
    la = Image.new("LA", (10, 10), (0, 0))
    assert np.asarray(read_image(la)).min() == 255
    p = Image.new("P", (10, 10), 0)
    p.putpalette([0, 0, 0] * 256)
    p.info["transparency"] = 0
    assert np.asarray(read_image(p).convert("L")).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    # Stored 40 wide x 20 high with a red top-left corner; orientation 6
    # means "rotate 90 degrees clockwise to display".
    stored = Image.new("RGB", (40, 20), "white")
    ImageDraw.Draw(stored).rectangle([0, 0, 7, 7], fill="red")
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())

    image = read_image(path)
    assert image.size == (20, 40)
    pixels = np.asarray(image, dtype=int)
    red = lambda px: px[0] > 200 and px[1] < 80 and px[2] < 80  # noqa: E731
    assert red(pixels[3, 16])  # top-right after rotating clockwise
    assert not red(pixels[3, 3])


def test_other_sources_match_a_path(tmp_path):
    path = tmp_path / "a.png"
    noisy_rgb().save(path)
    expected = np.asarray(read_image(path))
    with path.open("rb") as f:
        from_file = read_image(f)
    for image in (read_image(path.read_bytes()), from_file, read_image(expected), read_image(Image.open(path))):
        assert image.mode == "RGB"
        assert np.array_equal(np.asarray(image), expected)


def test_float_and_wide_int_arrays():
    gray = read_image(np.linspace(0.0, 1.0, 100).reshape(10, 10))
    assert gray.mode == "L" and np.asarray(gray).max() == 255 and np.asarray(gray).min() == 0
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent -> white
    assert np.asarray(read_image(rgba)).min() == 255
    wide = read_image(np.arange(16, dtype=np.int32).reshape(4, 4) * 1000)
    assert np.asarray(wide).max() == 255


# --- prepare, to_model_range, enlarge ---------------------------------------


def test_prepare_recovers_a_training_digit_from_a_photo(digits):
    images, _ = digits
    x = prepare(render_on_paper(images[0], seed=0), DIGIT_LOOK)
    assert x.shape == (8, 8, 1) and x.dtype == np.float32
    assert correlation(x, to_model_range(images[0])) > 0.8


def test_prepare_recovers_most_training_digits(digits):
    # A few of the original digits sit off-centre in their 8x8 box, which a
    # crop-and-centre cannot reproduce; the bulk must still match closely.
    images, _ = digits
    scores = np.array(
        [correlation(prepare(render_on_paper(images[i], seed=i), DIGIT_LOOK), to_model_range(images[i]))
         for i in range(100)]
    )
    assert np.median(scores) > 0.9
    assert np.mean(scores > 0.8) >= 0.9


def test_prepare_gives_same_digit_for_light_on_dark_input(digits):
    images, _ = digits
    photo = render_on_paper(images[42], seed=1)
    inverted = Image.fromarray(255 - np.asarray(photo))
    assert np.allclose(prepare(photo, DIGIT_LOOK), prepare(inverted, DIGIT_LOOK), atol=2 / 255)


def test_prepare_output_shape_dtype_and_range(digits):
    images, _ = digits
    x = prepare(render_on_paper(images[7], seed=7).convert("RGB"), DIGIT_LOOK)
    assert x.shape == DIGIT_LOOK.shape() == (8, 8, 1)
    assert x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() == pytest.approx(1.0)

    colour = ImageLook(32, 24, 3)
    y = prepare(noisy_rgb(100, 50), colour)
    assert y.shape == (32, 24, 3) and y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0


def test_light_on_dark_look_inverts_paper_pictures_only():
    paper = Image.new("L", (64, 64), 250)
    ImageDraw.Draw(paper).rectangle([24, 8, 39, 55], fill=10)  # dark bar
    night = Image.fromarray(255 - np.asarray(paper))  # already light on dark
    light_on_dark = ImageLook(16, 16, 1, light_on_dark=True)
    for picture in (paper, night):
        x = prepare(picture, light_on_dark)[..., 0]
        assert x[0, 0] < 0.05 and x[8, 8] > 0.9
    kept = prepare(paper, ImageLook(16, 16, 1))[..., 0]
    assert kept[0, 0] > 0.95 and kept[8, 8] < 0.1


@pytest.mark.parametrize("noise", [0.0, 4.0])
def test_blank_image_gives_zeros(noise):
    rng = np.random.default_rng(3)
    paper = np.clip(245 + rng.normal(0, noise, (150, 150)), 0, 255).astype(np.uint8)
    x = prepare(Image.fromarray(paper), DIGIT_LOOK)
    assert x.shape == (8, 8, 1)
    assert not x.any()


def test_to_model_range():
    x = to_model_range(np.array([0, 51, 255], np.uint8))
    assert x.dtype == np.float32
    assert np.allclose(x, [0.0, 0.2, 1.0])


def test_enlarge_shows_blocky_pixels():
    x = np.zeros((8, 8, 1), np.float32)
    x[2, 5] = 1.0
    big = enlarge(x)
    assert big.shape == (160, 160) and big.dtype == np.uint8
    assert big[40:60, 100:120].min() == 255  # one model pixel = a 20x20 block
    assert big.sum() == 255 * 400
    assert enlarge(np.ones((4, 8, 3), np.float32), size=80).shape == (40, 80, 3)


# --- bundled data ------------------------------------------------------------


def test_bundled_dataset_format(digits):
    images, labels = digits
    assert images.dtype == np.uint8 and images.shape[1:] == (8, 8, 1)
    assert labels.dtype == np.int64 and labels.shape == (len(images),)
    assert images.max() == 255
    with np.load(DIGITS) as data:
        assert list(data["class_names"]) == [str(i) for i in range(10)]


def test_example_images_decode_and_look_like_their_digit(digits):
    images, labels = digits
    paths = sorted(EXAMPLES.glob("digit_*.png"))
    assert len(paths) >= 5
    means = np.stack([to_model_range(images[labels == k]).mean(axis=0) for k in range(10)])
    for path in paths:
        assert path.stat().st_size < 30_000
        image = read_image(path)
        assert image.mode == "RGB" and min(image.size) >= 100
        x = prepare(image, DIGIT_LOOK)
        assert x.shape == (8, 8, 1) and x.max() == pytest.approx(1.0)
        nearest = int(np.argmax([correlation(x, m) for m in means]))
        assert nearest == int(path.stem.split("_")[1]), path.name
