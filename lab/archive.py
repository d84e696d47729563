"""A student's own pictures from a .zip of class folders: unpacked safely, decoded, checked.

A student zips one folder per class (``cats/…``, ``dogs/…``) and uploads it. Everything about
the zip is treated as hostile until checked, and every refusal says, in words a student can act
on, what is wrong. Part of the engine: no gradio, no keras.

What happens to what (``safe_extract_zip``):

Refused, the whole zip (``ArchiveError``; nothing is left on disk). These are either made on
purpose to harm the server, or a zip we cannot make sense of, so no partial result is offered:
  - not a zip at all, or its table of contents is damaged;
  - more than ``max_entries`` files (checked from the central directory before it is parsed);
  - unpacks to more than ``max_total_bytes`` (judged from the headers first, then by counting
    the bytes actually produced: the headers are never trusted);
  - any entry that expands more than ``max_ratio`` times (a "zip bomb"; headers, then counting);
  - any name that would land outside the target folder: ``../``, ``/abs``, ``C:``, ``\\\\server``,
    or the same with backslashes (every path is also resolved and checked to stay inside);
  - two names that are the same file on Windows or macOS (differing only in capital letters or
    in Unicode form), a name used twice, or a name used for both a file and a folder;
  - a password-protected zip, or a compression method we cannot unpack.

Skipped and counted (``ExtractReport.skipped``, reason -> count). A single odd file should not
cost a student their other 300 pictures:
  - ``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``, ``desktop.ini`` and any hidden (dot) file or folder;
  - links and other special entries (never created: every file is written as a plain new file);
  - a single file over ``max_file_bytes``;
  - a file damaged inside the zip (bad checksum, broken compressed data);
  - a name this disk cannot store (too long, for instance).

``load_image_folder`` then decodes every picture through ``lab.images.read_image`` (anything it
refuses is skipped and counted), ``class_table`` says what is thin or lopsided, and
``dataset_from_zip`` puts it all together into a ``lab.datasets.Dataset``.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import stat
import struct
import tempfile
import unicodedata
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lab import images
from lab.datasets import Dataset
from lab.images import ImageError, ImageLook, read_image

# An entry is only judged a bomb once it has produced this much: small files (a blank BMP, a
# text file) can compress far better than max_ratio and harm nobody.
RATIO_GRACE_BYTES = 1_000_000
# The central directory may hold this many records per allowed file before we stop reading it:
# macOS adds a __MACOSX/._twin for every file, and folders are records too.
ENTRY_SLACK = 3
MIN_IMAGES_PER_CLASS = 10
MAX_IMBALANCE = 3.0

SKIPPED_HIDDEN = "system or hidden files (__MACOSX, .DS_Store, …)"
SKIPPED_LINK = "links or special files"
SKIPPED_DAMAGED = "files damaged inside the zip"
SKIPPED_UNSAVABLE = "files whose names cannot be saved"
SKIPPED_LOOSE = "files outside a class folder"
SKIPPED_NOT_IMAGE = "not images we can read"
SKIPPED_BROKEN_IMAGE = "damaged or incomplete images"
SKIPPED_HUGE_IMAGE = "images too large"
SKIPPED_BAD_IMAGE = "unusable images"

NOT_A_ZIP = ("That file is not a zip archive we can open (it may be damaged, or another kind of "
             "archive such as .rar or .7z). Zip the folders again and upload the .zip.")
_JUNK_NAMES = {"__macosx", "thumbs.db", "desktop.ini"}
_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 16
_SUPPORTED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
try:
    import bz2  # noqa: F401  (zipfile needs it for bzip2 entries)

    _SUPPORTED_METHODS.add(zipfile.ZIP_BZIP2)
except ImportError:  # pragma: no cover - Python built without bz2
    pass
try:
    import lzma

    _SUPPORTED_METHODS.add(zipfile.ZIP_LZMA)
    _LZMA_ERRORS: tuple = (lzma.LZMAError,)
except ImportError:  # pragma: no cover - Python built without lzma
    _LZMA_ERRORS = ()
# What reading one damaged entry can raise (bz2 reports bad data as OSError; zipfile raises
# NotImplementedError for features flagged only in an entry's local header).
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, *_LZMA_ERRORS)

# End-of-central-directory records (APPNOTE 4.3.16, 4.3.14, 4.3.15) and one directory record.
_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CDIR = struct.Struct("<4s6H3L5H2L")


class ArchiveError(ValueError):
    """A zip was refused, or holds no usable dataset; the message is meant for the student."""


@dataclass(frozen=True)
class ExtractReport:
    """What `safe_extract_zip` did."""

    root: Path  # the target folder (resolved), holding exactly the files written
    files: int  # files written
    bytes: int  # bytes decompressed, counted as they were produced
    skipped: dict[str, int]  # reason -> files skipped (see the module docstring)


@dataclass(frozen=True)
class ZipImport:
    """A student's zip turned into a dataset, with what to tell them about it."""

    dataset: Dataset
    table: pd.DataFrame  # class_table(): class, images, warning
    skipped: dict[str, int]  # reason -> files, from unpacking and decoding together

    def notes(self) -> list[str]:
        """Plain sentences for the student: what was skipped, and each class warning."""
        skipped = describe_skipped(self.skipped)
        out = [skipped] if skipped else []
        out += [f"{row['class']}: {row['warning']}" for _, row in self.table.iterrows() if row["warning"]]
        return out


# --- unpacking ----------------------------------------------------------------


def safe_extract_zip(
    zip_path,
    target_dir,
    *,
    max_total_bytes: int = 200_000_000,
    max_entries: int = 5_000,
    max_ratio: float = 100,
    max_file_bytes: int = 20_000_000,
) -> ExtractReport:
    """Unpack a student's zip into `target_dir`, which must be empty or not exist yet.

    Raises ArchiveError (and removes whatever it wrote) for a zip it refuses; skips and counts
    single files it will not unpack. The module docstring lists which is which. Only plain
    files and folders are ever created, each file new (never overwriting, never through a link),
    with permissions 0644 whatever the zip says.
    """
    zip_path = Path(zip_path)
    target = Path(target_dir)
    created = not target.exists()
    if not created and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} must be an empty folder (or not exist yet)")
    with zip_path.open("rb") as f:
        _check_entry_count(f, max_entries)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, struct.error, NotImplementedError):
        raise ArchiveError(NOT_A_ZIP) from None
    with zf:
        entries = zf.infolist()
        if len(entries) > ENTRY_SLACK * max_entries:  # the early count already saw this many
            raise ArchiveError(_too_many(len(entries), max_entries))
        skipped: Counter = Counter()
        plan = _plan(entries, skipped)
        files = [(info, parts) for info, parts, is_dir in plan if not is_dir]
        if len(files) > max_entries:
            raise ArchiveError(_too_many(len(files), max_entries))
        _check_methods(info for info, _ in files)
        _check_declared_sizes([info for info, _ in files], max_total_bytes, max_ratio, max_file_bytes)

        target.mkdir(parents=True, exist_ok=True)
        root = target.resolve()
        try:
            written, total = _extract(zf, plan, root, skipped, max_total_bytes, max_ratio, max_file_bytes)
        except BaseException:
            _clear(root, remove_folder=created)
            raise
    return ExtractReport(root, written, total, dict(skipped))


def _check_entry_count(f, max_entries: int) -> None:
    """Refuse a zip with too many entries before zipfile parses (and holds) its whole directory.

    The count in the end record is believed only when it is too high; the directory records
    themselves are then counted, stopping once there are too many, so a lying end record
    cannot make us parse millions of entries either.
    """
    cap = ENTRY_SLACK * max_entries
    declared, start, size = _central_directory(f)
    if declared is not None and declared > cap:
        raise ArchiveError(_too_many(declared, max_entries))
    f.seek(start)
    count, pos, end = 0, start, start + size
    while pos < end and count <= cap:
        record = f.read(_CDIR.size)
        if len(record) < _CDIR.size or record[:4] != b"PK\x01\x02":
            break  # damaged: zipfile will say so
        fields = _CDIR.unpack(record)
        pos += _CDIR.size + fields[10] + fields[11] + fields[12]  # name, extra, comment
        f.seek(pos)
        count += 1
    if count > cap:
        raise ArchiveError(f"This zip holds more than {cap:,} files; the limit is {max_entries:,}.")


def _central_directory(f) -> tuple[int | None, int, int]:
    """(entries the end record declares or None, start, size) of the central directory."""
    f.seek(0, os.SEEK_END)
    file_size = f.tell()
    tail_start = max(0, file_size - (_EOCD.size + 0xFFFF))  # the end record + longest comment
    f.seek(tail_start)
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        raise ArchiveError(NOT_A_ZIP)
    _, _, _, _, count, size, offset, _ = _EOCD.unpack_from(tail, at)
    eocd = tail_start + at
    declared: int | None = count
    cd_end = eocd
    if count == 0xFFFF or size == 0xFFFFFFFF or offset == 0xFFFFFFFF:  # ZIP64
        declared = None
        locator = eocd - _EOCD64_LOCATOR.size
        record = locator - _EOCD64.size
        if record >= 0:
            f.seek(record)
            raw = f.read(_EOCD64.size + _EOCD64_LOCATOR.size)
            fields = _EOCD64.unpack_from(raw)
            if fields[0] == b"PK\x06\x06" and raw[_EOCD64.size:][:4] == b"PK\x06\x07":
                declared, size, cd_end = fields[7], fields[8], record
    start = cd_end - size  # like zipfile: tolerant of data prepended to the zip
    if start < 0:
        raise ArchiveError(NOT_A_ZIP)
    return declared, start, size


def _plan(entries, skipped: Counter) -> list[tuple[zipfile.ZipInfo, tuple[str, ...], bool]]:
    """(info, path parts, is folder) for everything to unpack; refuses escapes and duplicates."""
    plan = []
    for info in entries:
        parts = _name_parts(info.filename)  # every name is checked, even junk that is skipped
        mode = info.external_attr >> 16
        is_dir = info.is_dir() or stat.S_ISDIR(mode)
        if not parts:
            continue  # "./" or "": the folder itself
        if _is_junk(parts):
            if not is_dir:
                skipped[SKIPPED_HIDDEN] += 1
            continue
        if _is_special(info):
            skipped[SKIPPED_LINK] += 1
            continue
        plan.append((info, parts, is_dir))
    _check_duplicates(plan)
    return plan


def _name_parts(name: str) -> tuple[str, ...]:
    """The path parts of an entry name, or ArchiveError if it could land outside the folder.

    Backslashes count as folder separators (old Windows tools write them), so `..\\x` is an
    escape like `../x`, and `cats\\a.png` unpacks to cats/a.png.
    """
    clean = name.replace("\\", "/")
    escape = ArchiveError(
        f'This zip contains a file named "{name}", which would be unpacked outside its folder. '
        "Zips made on purpose to do that cannot be used; zip your class folders again."
    )
    if clean.startswith("/"):
        raise escape
    parts = []
    for part in clean.split("/"):
        if part in ("", "."):
            continue
        if part == ".." or _DRIVE.match(part):
            raise escape
        parts.append(part)
    return tuple(parts)


def _is_junk(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p.lower() in _JUNK_NAMES for p in parts)


def _is_special(info: zipfile.ZipInfo) -> bool:
    """A link, device, pipe or socket: anything but a plain file or folder."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        return True
    return info.create_system == 0 and bool(info.external_attr & 0x400)  # Windows reparse point


def _check_duplicates(plan) -> None:
    """Every file and folder path must be unique even on a case-insensitive disk."""
    seen: dict[str, tuple[str, bool]] = {}  # comparison key -> (spelling, is a file)
    for _, parts, is_dir in plan:
        for i in range(len(parts)):
            spelling = "/".join(parts[: i + 1])
            is_file = i == len(parts) - 1 and not is_dir
            key = unicodedata.normalize("NFC", spelling).lower()
            if key not in seen:
                seen[key] = (spelling, is_file)
                continue
            first, first_is_file = seen[key]
            if first == spelling and not (is_file or first_is_file):
                continue  # the same folder again
            if first == spelling and is_file and first_is_file:
                why = f'This zip holds two files named "{spelling}".'
            elif first == spelling:
                why = f'In this zip, "{spelling}" is both a file and a folder.'
            elif first.lower() == spelling.lower():
                why = (f'This zip holds both "{first}" and "{spelling}": names that differ only in '
                       "capital letters are the same name on Windows and macOS.")
            else:
                why = f'This zip holds two different files both written "{spelling}".'
            raise ArchiveError(why + " Rename one and zip the folders again.")


def _check_methods(infos) -> None:
    for info in infos:
        if info.flag_bits & 0x41:  # encrypted, or "strong encryption"
            raise ArchiveError("This zip is password-protected. Zip the folders again without a password.")
        if info.compress_type not in _SUPPORTED_METHODS or info.flag_bits & 0x20:  # 0x20: patch data
            raise ArchiveError(
                f"This zip uses a compression method we cannot unpack (method {info.compress_type}). "
                "Zip the folders again with your computer's standard zip tool."
            )


def _check_declared_sizes(infos, max_total_bytes, max_ratio, max_file_bytes) -> None:
    """Refuse early what the headers already admit to; the bytes are counted again later."""
    total = 0
    for info in infos:
        if _is_bomb(info.file_size, info.compress_size, max_ratio):
            raise ArchiveError(_bomb(info.filename, info.file_size / max(info.compress_size, 1), max_ratio))
        if info.file_size <= max_file_bytes:  # bigger ones are skipped unread
            total += info.file_size
    if total > max_total_bytes:
        raise ArchiveError(f"This zip unpacks to {_size(total)}; the limit is {_size(max_total_bytes)}. "
                           "Use fewer or smaller pictures.")


def _extract(zf, plan, root: Path, skipped: Counter, max_total_bytes, max_ratio, max_file_bytes):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    too_big = f"files over {_size(max_file_bytes)}"
    written = total = 0
    for info, parts, is_dir in plan:
        dest = root.joinpath(*parts)
        resolved = dest.resolve()
        if resolved == root or not resolved.is_relative_to(root):  # second line of defence
            raise ArchiveError(f'This zip contains a file named "{info.filename}", which would be '
                               "unpacked outside its folder. Zip your class folders again.")
        try:
            if is_dir:
                dest.mkdir(parents=True, exist_ok=True)
                continue
            if info.file_size > max_file_bytes:
                skipped[too_big] += 1
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(dest, flags, 0o644)
        except OSError:
            skipped[SKIPPED_UNSAVABLE] += 1
            continue
        with os.fdopen(fd, "wb") as out:
            size, skip = _copy(zf, info, out, total, max_total_bytes, max_ratio, max_file_bytes, too_big)
        total += size
        if skip:
            dest.unlink()
            skipped[skip] += 1
        else:
            written += 1
    return written, total


def _copy(zf, info, out, used: int, max_total_bytes, max_ratio, max_file_bytes, too_big: str) -> tuple[int, str | None]:
    """Stream one entry into `out`, counting what it really produces (headers can lie).

    Returns (bytes produced, None) or (bytes produced, why it is skipped); raises ArchiveError
    for a bomb, or once the zip as a whole (`used` bytes before this entry) passes its limit.
    """
    size = 0
    try:
        src = zf.open(info)
    except _READ_ERRORS:
        return size, SKIPPED_DAMAGED
    with src:
        while True:
            try:
                chunk = src.read(_CHUNK)
            except _READ_ERRORS:
                return size, SKIPPED_DAMAGED
            if not chunk:
                return size, None
            size += len(chunk)
            if _is_bomb(size, info.compress_size, max_ratio):
                raise ArchiveError(_bomb(info.filename, size / max(info.compress_size, 1), max_ratio))
            if used + size > max_total_bytes:
                raise ArchiveError(f"This zip unpacks to more than {_size(max_total_bytes)}, the limit. "
                                   "Use fewer or smaller pictures.")
            if size > max_file_bytes:  # the header understated it
                return size, too_big
            out.write(chunk)


def _is_bomb(produced: int, compressed: int, max_ratio: float) -> bool:
    return produced > RATIO_GRACE_BYTES and produced > max_ratio * max(compressed, 1)


def _bomb(name: str, ratio: float, max_ratio: float) -> str:
    return (f'This zip looks like a "zip bomb": "{name}" grows more than {ratio:,.0f} times bigger when '
            f"unpacked (real pictures stay under {max_ratio:,.0f} times). It cannot be used.")


def _too_many(n: int, max_entries: int) -> str:
    return f"This zip holds {n:,} files; the limit is {max_entries:,}. Use fewer pictures."


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


def _clear(root: Path, remove_folder: bool) -> None:
    """Undo a refused extraction (only plain files and folders were created)."""
    if remove_folder:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# --- decoding -------------------------------------------------------------------


def load_image_folder(root, size=(96, 96), channels: int = 3, *, workers: int | None = None):
    """Decode a folder of class folders into arrays.

    Args:
        root: a folder whose subfolders are the classes (sorted by name). When it holds just
            one folder that itself holds folders (``pets/cats``, ``pets/dogs``), that wrapper is
            descended into. Pictures may sit deeper inside a class folder; they belong to it.
        size: (height, width) every picture is resized to, stretched (no crop), with the same
            resampling as `lab.images.prepare` uses for a non-fit-to-content look, so training
            images and the Try tab's input are made alike.
        channels: 3 (RGB) or 1 (grayscale).
        workers: decoding threads (Pillow decodes outside the GIL); default up to 4.

    Returns:
        (x uint8 (N, H, W, C), y int64 (N,), class_names, skipped: reason -> count). Files that
        `read_image` refuses, loose files beside the class folders, hidden files and links are
        skipped and counted. A class whose pictures were all skipped keeps its name and has 0.
    """
    if channels not in (1, 3):
        raise ValueError("channels must be 1 or 3")
    height, width = size
    root = _class_root(Path(root))
    skipped: Counter = Counter()
    folders, loose = _listing(root, skipped)
    skipped[SKIPPED_LOOSE] += len(loose)
    class_names = [d.name for d in folders]
    items = [(path, label) for label, folder in enumerate(folders) for path in _files_under(folder, skipped)]

    def decode(path: Path):
        try:
            image = read_image(path)
        except ImageError as e:
            return None, _image_reason(str(e))
        small = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.Resampling.LANCZOS)
        return np.asarray(small, dtype=np.uint8).reshape(height, width, channels), None

    workers = workers or min(4, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = list(pool.map(decode, [path for path, _ in items]))
    xs, ys = [], []
    for (pixels, reason), (_, label) in zip(decoded, items):
        if pixels is None:
            skipped[reason] += 1
        else:
            xs.append(pixels)
            ys.append(label)
    x = np.stack(xs) if xs else np.zeros((0, height, width, channels), np.uint8)
    y = np.asarray(ys, dtype=np.int64)
    return x, y, class_names, {k: v for k, v in skipped.items() if v}


def _listing(folder: Path, skipped: Counter | None = None) -> tuple[list[Path], list[Path]]:
    """(visible subfolders, visible files), sorted by name; links and hidden things left out."""
    dirs, files = [], []
    for child in folder.iterdir():
        if _is_junk((child.name,)):
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


def import_zip(zip_path, workdir, name: str, *, size=(96, 96), **limits) -> ZipImport:
    """`dataset_from_zip` plus the class table and what was skipped, for the Data tab.

    The zip is unpacked into a new scratch folder inside `workdir` (the student's own folder),
    decoded, and the unpacked files are removed again: the dataset lives in memory.
    `limits` go to `safe_extract_zip`.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="unzip-", dir=workdir))
    try:
        report = safe_extract_zip(zip_path, scratch / "files", **limits)
        x, y, class_names, skipped_decoding = load_image_folder(report.root, size)
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
    look = ImageLook(size[0], size[1], 3, light_on_dark=False, fit_to_content=False)
    return ZipImport(Dataset(name, x, y, tuple(class_names), look), table, skipped)


def dataset_from_zip(zip_path, workdir, name: str) -> Dataset:
    """A student's zip of class folders as a Dataset of 96×96 RGB pictures.

    Raises ArchiveError (a message for the student) for a refused zip, fewer than 2 classes, or
    a class without a single readable picture.
    """
    return import_zip(zip_path, workdir, name).dataset
