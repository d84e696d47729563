"""Where runs are kept (persistent storage on a hosted Space when it has some, else local disk), and how
much the class may keep: `DiskBudget` removes the oldest runs and datasets beyond a limit, and the
upload limits Gradio is given.

Also the two helpers the stores share: `atomic_folder` (write a folder completely or not at all)
and `LRU` (a small bounded cache of loaded runs, datasets or features, safe between threads).
Light: the standard library only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Callable, Generic, Hashable, Iterator, TypeVar

SPACE_DATA = Path("/data")  # a Hugging Face Space's persistent storage, when the Space has it


def choose_runs_dir(explicit: str | None, environ=os.environ, data_dir: Path = SPACE_DATA) -> tuple[Path, str]:
    """The runs folder and a note for the page ("" when there is nothing to warn about).

    Args:
        explicit: --runs-dir, when the teacher gave one (always wins).
        environ: the process environment (a Space sets SPACE_ID).
        data_dir: the persistent-storage mount to look for.
    """
    if explicit:
        return Path(explicit), ""
    if data_dir.is_dir() and os.access(data_dir, os.W_OK):
        return data_dir / "vision-lab" / "runs", ""
    if environ.get("SPACE_ID"):
        return Path("runs"), ("Runs are saved on this Space's local disk and will be lost when it restarts "
                              "(add persistent storage to keep them).")
    return Path("runs"), ""


TMP_PREFIX = ".tmp-"  # a folder being written: renamed into place when complete


def sweep_temporary(root: Path) -> int:
    """Remove half-written folders (`.tmp-*`) that a killed save left behind; returns how many.

    Call at start-up, before any save can be in flight: saves write into a `.tmp-` folder and
    rename it into place, so anything still called that is garbage.
    """
    n = 0
    for folder in Path(root).glob(TMP_PREFIX + "*"):
        shutil.rmtree(folder, ignore_errors=True)
        n += 1
    return n


@contextlib.contextmanager
def atomic_folder(final: Path) -> Iterator[Path]:
    """Write a folder completely or not at all: yields a `.tmp-` folder beside `final` to fill, and
    renames it to `final` when the block ends; on an error (or a kill: see sweep_temporary) the
    temporary folder is removed and nothing appears under `final`'s name.
    """
    final = Path(final)
    tmp = final.with_name(TMP_PREFIX + final.name)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A dict of at most `size` entries that forgets the least recently used first; safe to share
    between threads (every method holds one lock).

    What the stores keep in memory (loaded runs, decoded datasets, backbone features); callers
    compute a missing value outside the lock and `put` it, so two threads may both compute it.
    """

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value for `key` (now the most recently used), or `default`."""
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> None:
        """Keep `value` under `key` as the most recently used, forgetting the oldest beyond `size`."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def pop(self, key: K, default: V | None = None) -> V | None:
        """Forget `key`; its value, or `default` when it was not kept."""
        with self._lock:
            return self._items.pop(key, default)

    def discard_where(self, predicate: Callable[[K], bool]) -> int:
        """Forget every key for which `predicate(key)` is true; returns how many."""
        with self._lock:
            gone = [k for k in self._items if predicate(k)]
            for k in gone:
                del self._items[k]
            return len(gone)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


SECRET_FILE = ".browser-state-key"


def persistent_secret(folder: Path) -> str:
    """A random key made once and kept in `folder` (read back on every later start).

    The page's gr.BrowserState is encrypted with it, so a restarted app can still read the
    client id each browser kept: students find their runs again after a restart. Gradio sends
    this key to every browser, so it gives persistence, not secrecy: the client id itself (random,
    never displayed) is a student's identity.
    """
    path = Path(folder) / SECRET_FILE
    try:
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
    except OSError:
        pass
    key = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(key)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)  # never a half-written key
    return key


# --- what the class may keep -------------------------------------------------------------

DISK_BUDGET_ENV = "VISION_LAB_DISK_BUDGET_GB"
DEFAULT_DISK_BUDGET = 5_000_000_000  # runs and students' datasets together (webcam captures become datasets)
UPLOAD_LIMIT_ENV = "VISION_LAB_MAX_UPLOAD_MB"
# One uploaded file (a zip of pictures unpacks to at most 200 MB, and pictures barely compress).
DEFAULT_MAX_UPLOAD = 200_000_000
# Gradio's temporary files (uploads, pictures it serves): every half hour, those over an hour old go.
DELETE_CACHE = (1800, 3600)


def _from_env(environ, name: str, scale: float, default: int) -> int:
    raw = environ.get(name, "")
    try:
        value = float(raw) * scale if raw.strip() else default
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw[:40]!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{name} must be a positive number, not {raw[:40]!r}")
    return int(value)


def upload_limit(environ=os.environ) -> int:
    """The largest file one upload may be, in bytes (Gradio's launch(max_file_size=...))."""
    return _from_env(environ, UPLOAD_LIMIT_ENV, 1e6, DEFAULT_MAX_UPLOAD)


def _folder_size(folder: Path) -> int:
    total = 0
    for entry in os.scandir(folder):
        try:
            if entry.is_dir(follow_symlinks=False):
                total += _folder_size(Path(entry.path))
            else:
                total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


class DiskBudget:
    """The disk the whole class's runs and datasets may use, kept by removing the oldest first.

    Each area is a folder whose subfolders are the items (one run, one dataset); folders whose
    names start with "." (being written, scratch space) are never counted or removed. After each
    save, `after_save` removes the oldest items of all areas together until the total fits, never
    the one just saved, and returns a sentence for the page ("" when nothing had to go). Safe to
    share between threads.

    Args:
        limit: bytes; by default VISION_LAB_DISK_BUDGET_GB (gigabytes) or DEFAULT_DISK_BUDGET.
    """

    def __init__(self, limit: int | None = None, environ=os.environ):
        self.limit = int(limit) if limit is not None else _from_env(environ, DISK_BUDGET_ENV, 1e9, DEFAULT_DISK_BUDGET)
        self._areas: list[tuple[str, Path, object]] = []
        self._lock = threading.Lock()
        self._notes: dict[str, str] = {}  # item name -> what saving it removed (for the job's message)

    def add_area(self, kind: str, root, forget=None) -> "DiskBudget":
        """Count `root`'s subfolders as items of `kind` ("run", "dataset"). `forget(name)` is
        called after an item is removed (to drop it from a cache)."""
        self._areas.append((kind, Path(root), forget))
        return self

    def usage(self) -> int:
        """Bytes the areas' items use now."""
        return sum(size for *_, size in self._items())

    def after_save(self, saved) -> str:
        """Make room after `saved` (the folder just written) was saved; returns the page's note."""
        saved = Path(saved)
        with self._lock:
            items = self._items()
            total = sum(size for *_, size in items)
            removed: Counter = Counter()
            freed = 0
            for _, kind, folder, forget, size in sorted(items, key=lambda item: item[0]):  # oldest first
                if total <= self.limit:
                    break
                if folder == saved:
                    continue
                shutil.rmtree(folder, ignore_errors=True)
                if forget is not None:
                    forget(folder.name)
                total -= size
                freed += size
                removed[kind] += 1
            note = self._note(removed, freed) if removed else ""
            if note:
                self._notes[saved.name] = note
                while len(self._notes) > 100:
                    self._notes.pop(next(iter(self._notes)))
        return note

    def note(self, name: str) -> str:
        """The note `after_save` gave when the item called `name` was saved ("" if none); once."""
        with self._lock:
            return self._notes.pop(name, "")

    def _note(self, removed: Counter, freed: int) -> str:
        what = " and ".join(f"{n} {kind}{'s' if n != 1 else ''}"
                            for kind, n in sorted(removed.items(), key=lambda kv: (kv[0] != "run", kv[0])))
        return (f"The class's storage is full ({_size(self.limit)} for everyone's runs and datasets): "
                f"the oldest were removed to make room ({what}, {_size(freed)}).")

    def _items(self) -> list[tuple[float, str, Path, object, int]]:
        items = []
        for kind, root, forget in self._areas:
            try:
                children = list(os.scandir(root))
            except OSError:
                continue
            for entry in children:
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                folder = Path(entry.path)
                try:
                    when = (folder / "meta.json").stat().st_mtime
                except OSError:
                    try:
                        when = entry.stat(follow_symlinks=False).st_mtime
                    except OSError:
                        continue
                items.append((when, kind, folder, forget, _folder_size(folder)))
        return items
