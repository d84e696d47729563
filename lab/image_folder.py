"""A student's unpacked class folders -> a Dataset: decoded, counted and checked.

The second half of bringing your own pictures, after `lab.archive.safe_extract_zip`:
`load_image_folder` decodes every picture through `lab.images.read_image` (anything it refuses
is skipped and counted), `class_table` says what is thin or lopsided, and `import_zip` /
`dataset_from_zip` put it all together. Part of the engine: no gradio, no keras.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lab import images
from lab.archive import (
    MAX_IMBALANCE, MIN_IMAGES_PER_CLASS, SKIPPED_BAD_IMAGE, SKIPPED_BROKEN_IMAGE, SKIPPED_HIDDEN,
    SKIPPED_HUGE_IMAGE, SKIPPED_LINK, SKIPPED_LOOSE, SKIPPED_NOT_IMAGE, ArchiveError, is_junk, safe_extract_zip,
)
from lab.dataset_base import Dataset
from lab.images import MAX_PIXELS, ImageError, ImageLook, decoded_size, read_image

# The decoding work one upload may ask for: its pictures' pixels added up (as decoded: a JPEG is
# decoded at a fraction of its size, see lab.images.MAX_SIDE). Checked from the headers, before
# any is decoded: a 26 KB zip of 80 black 40-megapixel PNGs asked for 3,200 megapixels (half a
# minute of CPU), a 1.6 MB one for 17 minutes of both cores. 990 megapixels of PNGs take ~3 s.
MAX_IMPORT_PIXELS = 1_000_000_000

# Own pictures keep their own size (issue 19): the smallest of these sides that holds a typical picture's
# short side, so 28×28 digits stay 28×28 (enlarging adds no detail, only work: 3,000 of them trained
# about 10× slower at 96×96×3 for no accuracy) and photos become 96×96 (a transfer model resizes
# inside itself to its backbone's size).
LOOK_SIDES = (28, 32, 48, 64, 96)


@dataclass(frozen=True)
class ZipImport:
    """A student's zip turned into a dataset, with what to tell them about it."""

    dataset: Dataset
    table: pd.DataFrame  # class_table(): class, images, warning
    skipped: dict[str, int]  # reason -> files, from unpacking and decoding together
    storage_note: str = ""  # set once saved, when the class's storage was full (lab.storage.DiskBudget)
    look_why: str = ""  # how the pictures' size and colour were chosen, in plain words

    def notes(self) -> list[str]:
        """Plain sentences for the student: what was skipped, each class warning, storage clean-up."""
        skipped = describe_skipped(self.skipped)
        out = ([self.look_why] if self.look_why else []) + ([skipped] if skipped else [])
        out += [f"{row['class']}: {row['warning']}" for _, row in self.table.iterrows() if row["warning"]]
        return out + ([self.storage_note] if self.storage_note else [])


def choose_look(sizes, grey: bool) -> tuple[ImageLook, str]:
    """The look own pictures are trained at, from their (width, height)s as decoded, and why.

    The side is the smallest of LOOK_SIDES that holds the median short side (the largest for
    photos); grey pictures get one channel."""
    short = sorted(min(w, h) for w, h in sizes)
    typical = short[len(short) // 2] if short else LOOK_SIDES[-1]
    side = next((s for s in LOOK_SIDES if s >= typical), LOOK_SIDES[-1])
    colour = "grey (one channel)" if grey else "in colour"
    if typical > side:
        size = (f"your pictures are large (about {typical} pixels on the short side), so they are shrunk to "
                f"{side}×{side}, the lab's size for photos")
    elif typical == side:
        size = f"your pictures are {side}×{side}, so they keep that size"
    else:
        size = (f"your pictures are about {typical} pixels on the short side, so they are kept near their size at "
                f"{side}×{side} rather than enlarged to {LOOK_SIDES[-1]}×{LOOK_SIDES[-1]}: enlarging adds no detail, only work")
    why = f"Pictures used at {side}×{side}, {colour}: {size}" + ("; they are all grey." if grey else ".")
    return ImageLook(side, side, 1 if grey else 3, light_on_dark=False, fit_to_content=False), why


def load_image_folder(root, size=(96, 96), channels: int = 3, *, workers: int | None = None,
                      max_pixels: int = MAX_PIXELS, max_total_pixels: int = MAX_IMPORT_PIXELS, chosen: dict | None = None):
    """Decode a folder of class folders into arrays.

    Args:
        root: a folder whose subfolders are the classes (sorted by name). When it holds just
            one folder that itself holds folders (``pets/cats``, ``pets/dogs``), that wrapper is
            descended into. Pictures may sit deeper inside a class folder; they belong to it.
        size: (height, width) every picture is resized to, stretched (no crop), with the same
            resampling as `lab.images.prepare` uses for a non-fit-to-content look, so training
            images and the Try tab's input are made alike.
            None: chosen from the pictures (`choose_look`; with channels None too).
        channels: 3 (RGB) or 1 (grayscale); None: 1 when every picture is grey, else 3.
        chosen: with size None, filled with "look" (the ImageLook chosen) and "why" (plain words).
        workers: decoding threads (Pillow decodes outside the GIL); default up to 4.
        max_pixels: a bigger picture is skipped (counted as too large), judged from its header.
        max_total_pixels: the pictures' pixels added up (from their headers, before any is
            decoded); more raises ArchiveError: the decoding work one upload may ask for.

    Returns:
        (x uint8 (N, H, W, C), y int64 (N,), class_names, skipped: reason -> count). Files that
        `read_image` refuses, loose files beside the class folders, hidden files and links are
        skipped and counted. A class whose pictures were all skipped keeps its name and has 0.
    """
    if channels not in (1, 3, None):
        raise ValueError("channels must be 1 or 3")
    root = _class_root(Path(root))
    skipped: Counter = Counter()
    folders, loose = _listing(root, skipped)
    skipped[SKIPPED_LOOSE] += len(loose)
    class_names = [d.name for d in folders]
    items = [(path, label) for label, folder in enumerate(folders) for path in _files_under(folder, skipped)]
    workers = workers or min(4, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        planned = list(pool.map(decoded_size, [path for path, _ in items]))
        readable = [wh for wh in planned if wh is not None and wh[0] * wh[1] <= max_pixels]  # bigger: skipped unread
        total = sum(w * h for w, h in readable)
        if total > max_total_pixels:
            raise ArchiveError(too_much_decoding(total, max_total_pixels, max_pixels))
        if size is None:
            side = choose_look(readable, grey=False)[0].height
            size = (side, side)
        height, width = size
        decode_channels = 3 if channels is None else channels
        # Filled in place by the decoding threads: no list of arrays and no second copy from np.stack.
        x = np.empty((len(items), height, width, decode_channels), np.uint8)

        def decode(i: int) -> str | None:
            try:
                image = read_image(items[i][0], max_pixels=max_pixels)
            except ImageError as e:
                return _image_reason(str(e))
            small = image.convert("L" if decode_channels == 1 else "RGB").resize((width, height), Image.Resampling.LANCZOS)
            x[i] = np.asarray(small, dtype=np.uint8).reshape(height, width, decode_channels)
            return None

        reasons = list(pool.map(decode, range(len(items))))
    kept = [i for i, reason in enumerate(reasons) if reason is None]
    skipped.update(reason for reason in reasons if reason is not None)
    if len(kept) < len(items):  # close the gaps in place, then give the tail back
        for j, i in enumerate(kept):
            if i != j:
                x[j] = x[i]
        x.resize((len(kept), height, width, decode_channels), refcheck=False)
    if channels is None and len(x) and _all_grey(x):  # grey pictures (even saved as RGB): one channel
        x = np.ascontiguousarray(x[..., :1])
    if chosen is not None:
        look, why = choose_look(readable, grey=x.shape[-1] == 1)
        chosen.update(look=dataclasses.replace(look, height=height, width=width), why=why)
    y = np.asarray([items[i][1] for i in kept], dtype=np.int64)
    return x, y, class_names, {k: v for k, v in skipped.items() if v}


def _all_grey(x: np.ndarray) -> bool:
    """Every pixel of every picture has red = green = blue (checked a slice at a time: no big temporaries)."""
    for start in range(0, len(x), 256):
        part = x[start:start + 256]
        if not (np.array_equal(part[..., 0], part[..., 1]) and np.array_equal(part[..., 1], part[..., 2])):
            return False
    return True


def too_much_decoding(total: int, max_total_pixels: int, max_pixels: int) -> str:
    """The refusal for a zip whose pictures add up to more decoding than one upload may ask for."""
    return (f"The pictures in this zip add up to {total / 1e6:,.0f} megapixels; one upload may hold at most "
            f"{max_total_pixels / 1e6:,.0f} megapixels, each picture at most {max_pixels / 1e6:g} megapixels. "
            "Use fewer or smaller pictures: they are shrunk to 96×96 anyway. Nothing was decoded.")


def _listing(folder: Path, skipped: Counter | None = None) -> tuple[list[Path], list[Path]]:
    """(visible subfolders, visible files), sorted by name; links and hidden things left out."""
    dirs, files = [], []
    for child in folder.iterdir():
        if is_junk((child.name,)):
            if skipped is not None and not child.is_dir():
                skipped[SKIPPED_HIDDEN] += 1
        elif child.is_symlink():
            if skipped is not None:
                skipped[SKIPPED_LINK] += 1
        elif child.is_dir():
            dirs.append(child)
        elif child.is_file():
            files.append(child)
    order = lambda p: (p.name.casefold(), p.name)  # noqa: E731
    return sorted(dirs, key=order), sorted(files, key=order)


def _class_root(root: Path) -> Path:
    """Step into a single wrapping folder (pets/cats, pets/dogs), as deep as it goes."""
    for _ in range(16):
        dirs, files = _listing(root)
        if len(dirs) == 1 and not files and _listing(dirs[0])[0]:
            root = dirs[0]
        else:
            break
    return root


def _files_under(folder: Path, skipped: Counter) -> list[Path]:
    dirs, files = _listing(folder, skipped)
    for sub in dirs:
        files += _files_under(sub, skipped)
    return files


def _image_reason(message: str) -> str:
    if message == images.NOT_AN_IMAGE:
        return SKIPPED_NOT_IMAGE
    if message == images.TRUNCATED:
        return SKIPPED_BROKEN_IMAGE
    if "too large" in message:
        return SKIPPED_HUGE_IMAGE
    return SKIPPED_BAD_IMAGE


# --- checking and putting it together ---------------------------------------------------


def class_table(counts: dict, *, min_images: int = MIN_IMAGES_PER_CLASS, max_imbalance: float = MAX_IMBALANCE) -> pd.DataFrame:
    """Columns class, images, warning ("" when all is well), one row per class in order.

    Warns about a class with fewer than `min_images` pictures (or none), and about a class with
    more than `max_imbalance` times fewer than the biggest. Raises ArchiveError for fewer than
    2 classes: there is nothing to tell apart.
    """
    if len(counts) < 2:
        has = f'only one, "{next(iter(counts))}"' if counts else "none"
        raise ArchiveError("A classifier needs at least 2 classes: one folder of pictures per class "
                           f"(for example cats/ and dogs/) inside the zip. This zip has {has}.")
    biggest_name, biggest = max(counts.items(), key=lambda kv: kv[1])
    rows = []
    for name, n in counts.items():
        n = int(n)
        notes = []
        if n == 0:
            notes.append("no pictures we could read")
        else:
            if n < min_images:
                notes.append(f"only {n} picture{'s' if n != 1 else ''}: aim for at least {min_images}")
            if biggest > max_imbalance * n:
                notes.append(f'{biggest / n:.1f}× fewer than "{biggest_name}" ({biggest}): '
                             "the model may learn to favour the bigger class")
        rows.append({"class": str(name), "images": n, "warning": "; ".join(notes)})
    table = pd.DataFrame(rows, columns=["class", "images", "warning"])
    return table.astype({"images": "int64"})


def describe_skipped(skipped: dict[str, int], *, include_hidden: bool = False) -> str:
    """One sentence for the student, e.g. "Skipped 3 files: 2 not images we can read, 1 …"."""
    shown = {k: v for k, v in skipped.items() if v and (include_hidden or k != SKIPPED_HIDDEN)}
    if not shown:
        return ""
    n = sum(shown.values())
    parts = ", ".join(f"{v:,} {k}" for k, v in sorted(shown.items(), key=lambda kv: -kv[1]))
    return f"Skipped {n:,} file{'s' if n != 1 else ''}: {parts}."


def import_zip(zip_path, workdir, name: str, *, size=None, max_pixels: int = MAX_PIXELS,
               max_total_pixels: int = MAX_IMPORT_PIXELS, **limits) -> ZipImport:
    """`dataset_from_zip` plus the class table and what was skipped, for the Data tab.

    The zip is unpacked into a new scratch folder inside `workdir` (the student's own folder),
    decoded, and the unpacked files are removed again: the dataset lives in memory.
    `size` None (the default) chooses the size and colour from the pictures (`choose_look`);
    (height, width) forces an RGB look of that size.
    `max_pixels` and `max_total_pixels` go to `load_image_folder`, other `limits` to
    `safe_extract_zip`.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="unzip-", dir=workdir))
    try:
        report = safe_extract_zip(zip_path, scratch / "files", **limits)
        chosen: dict = {}
        x, y, class_names, skipped_decoding = load_image_folder(
            report.root, size, channels=None if size is None else 3, max_pixels=max_pixels,
            max_total_pixels=max_total_pixels, chosen=chosen if size is None else None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    skipped = Counter(report.skipped)
    skipped.update(skipped_decoding)
    skipped = {k: v for k, v in skipped.items() if v}
    per_class = np.bincount(y, minlength=len(class_names))
    counts = {c: int(n) for c, n in zip(class_names, per_class)}
    table = class_table(counts)
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        why = describe_skipped(skipped)
        raise ArchiveError(f"No pictures we could read in: {', '.join(empty)}. Every class needs some."
                           + (f" {why}" if why else ""))
    x.setflags(write=False)
    y.setflags(write=False)
    if size is None:
        look, why = chosen["look"], chosen["why"]
    else:
        look, why = ImageLook(size[0], size[1], 3, light_on_dark=False, fit_to_content=False), ""
    return ZipImport(Dataset(name, x, y, tuple(class_names), look), table, skipped, look_why=why)


def dataset_from_zip(zip_path, workdir, name: str) -> Dataset:
    """A student's zip of class folders as a Dataset, at the size and colour its pictures have (`choose_look`).

    Raises ArchiveError (a message for the student) for a refused zip, fewer than 2 classes, or
    a class without a single readable picture.
    """
    return import_zip(zip_path, workdir, name).dataset
