"""Hostile files and measurements shared by the tests/test_hostile_*.py tests (issue 10).

Every file here is tiny on disk and costly to someone who trusts it: the point of each test is
that the server refuses it from a header, or does bounded work, and keeps answering.
"""

from __future__ import annotations

import io
import os
import threading
import time
import zipfile
from pathlib import Path

from PIL import Image

MB = 1 << 20


def huge_webp(path: Path, size=(16383, 2000)) -> Path:
    """A lossless WebP of white pixels: about 1.3 KB on disk, 33 megapixels decoded."""
    Image.new("RGB", size, "white").save(path, "WEBP", lossless=True)
    return path


def black_png(size) -> bytes:
    """An all-black grey PNG: 40 megapixels compress to about 40 KB."""
    buf = io.BytesIO()
    Image.new("L", size, 0).save(buf, "PNG")
    return buf.getvalue()


def zip_of(path: Path, png: bytes, n: int, classes=("a", "b")) -> Path:
    """`n` copies of one picture spread over class folders (the zip deflates the copies too)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            zf.writestr(f"{classes[i % len(classes)]}/{i:05d}.png", png)
    return path


def one_pixel_pngs_zip(path: Path, n: int = 5000) -> Path:
    """`n` different 1x1 PNGs in two classes (about 0.8 MB for 5,000)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            buf = io.BytesIO()
            Image.new("RGB", (1, 1), (i % 256, (i // 256) % 256, 128)).save(buf, "PNG")
            zf.writestr(f"{'ab'[i % 2]}/{i:05d}.png", buf.getvalue())
    return path


def _status(pid, field: str) -> int:
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        import pytest

        pytest.skip("measuring memory needs Linux's /proc")
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def rss(pid="self") -> int:
    """Resident memory of a process now, in bytes."""
    return _status(pid, "VmRSS")


def cpu_seconds(pid="self") -> float:
    """User + system CPU time a process has used (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rise(fn, pid="self"):
    """(fn(), how far the process's resident memory rose above where it was, at its peak).

    The kernel's high-water mark is reset first (/proc/<pid>/clear_refs), so the peak is this
    call's; where that is not allowed, the memory is sampled every 10 ms instead.
    """
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        exact = True
    except OSError:
        exact = False
    before = rss(pid)
    peak, done = [before], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss(pid))
            time.sleep(0.01)

    sampler = None if exact else threading.Thread(target=sample, daemon=True)
    if sampler:
        sampler.start()
    try:
        result = fn()
    finally:
        done.set()
        if sampler:
            sampler.join()
    top = _status(pid, "VmHWM") if exact else max(peak[0], rss(pid))
    return result, top - before
