"""A student's own pictures from a .zip of class folders, unpacked safely.

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

``lab.image_folder`` then turns the unpacked folders into a ``lab.datasets.Dataset``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path



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
SKIPPED_HUGE_IMAGE = "images too large (over 16 megapixels)"  # lab.images.MAX_PIXELS
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
        if is_junk(parts):
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


def is_junk(parts: tuple[str, ...]) -> bool:
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
