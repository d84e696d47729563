"""Zips and pictures made by the tests (shared by test_archive.py and test_image_folder.py)."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

RED, BLUE = (220, 30, 30), (30, 30, 220)


def picture(colour, size=(40, 30), fmt="PNG", seed=0) -> bytes:
    """A real image file: a flat colour with a little noise (so JPEG has something to do)."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.clip(np.array(colour) + rng.integers(-10, 11, (h, w, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, fmt)
    return buf.getvalue()


def make_zip(path: Path, entries, compression=zipfile.ZIP_DEFLATED) -> Path:
    """entries: (name or ZipInfo, bytes or str). Names are written exactly as given."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries:
            if isinstance(name, str):
                info = zipfile.ZipInfo("placeholder")
                info.filename = name  # bypass any clean-up zipfile might do on writing
                info.compress_type = compression
                info.external_attr = (0o40755 << 16) | 0x10 if name.endswith("/") else 0o100644 << 16
                name = info
            zf.writestr(name, data)
    return path


def pets_zip(path: Path, n_cats=12, n_dogs=11, prefix="", extra=()) -> Path:
    entries = [(f"{prefix}cats/cat_{i:02d}.png", picture(RED, (40 + i, 30), "PNG", i)) for i in range(n_cats)]
    entries += [(f"{prefix}dogs/dog_{i:02d}.jpg", picture(BLUE, (50, 60 + i), "JPEG", i)) for i in range(n_dogs)]
    return make_zip(path, [*entries, *extra])


def stored_zip_bytes(names) -> bytes:
    """A zip of empty stored entries built by hand: fast even for 100,000 names (ZIP64 past 65,535)."""
    local, central = bytearray(), bytearray()
    for name in names:
        n = name.encode()
        offset = len(local)
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(n), 0) + n
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(n), 0, 0, 0, 0,
                               0o100644 << 16, offset) + n
    count, cd_offset, tail = len(names), len(local), b""
    if count > 0xFFFF:
        zip64_at = cd_offset + len(central)
        tail += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), cd_offset)
        tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_at, 1)
        count = 0xFFFF
    tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), cd_offset, 0)
    return bytes(local + central + tail)


def tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
