"""UserDatasets: the students' own datasets (an uploaded zip, webcam captures), each private.

A dataset gets an id like ``pets@3f9a1c0b7e`` (the name the student chose, then a random
part): that id is what `/train` takes as ``dataset``. Ids are unguessable and every dataset
remembers its owner, so one student can neither list nor train on another's pictures.

On disk, under `root`: ``<random part>/data.npz`` (uint8 images, labels; compressed: a zip of
5,000 one-pixel pictures made a 138 MB file uncompressed) and ``meta.json`` (owner, name, class
names, counts, how the images look, what was skipped). Saves are atomic (a temporary folder
renamed into place), so a crash never leaves half a dataset behind. With a `DiskBudget`, each
save removes the class's oldest runs and datasets beyond it (`storage_note` says so).

`Catalog` answers for every name a job may take, built-in or a student's own: `load` it, or
`describe` it (title, look, classes, where it comes from) without loading anything.
Part of the engine: no gradio, no keras.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lab import datasets
from lab.dataset_base import Dataset, DatasetError
from lab.images import ImageLook
from lab.storage import LRU, DiskBudget, atomic_folder, sweep_temporary

_ID = re.compile(r"^([a-z0-9][a-z0-9_-]{0,39})@([0-9a-f]{10})$")
MAX_DATASETS_PER_OWNER = 20  # the oldest are removed beyond this: a shared disk must not fill up
MIN_CLASSES = 2


def slug(name: str) -> str:
    """A dataset name as it appears in ids: lower-case letters, digits, '-' and '_' (at most 40)."""
    s = re.sub(r"[^a-z0-9_-]+", "-", str(name).strip().lower()).strip("-_")[:40]
    return s or "my-images"


def is_dataset_id(name) -> bool:
    """True when `name` has the form of a student's dataset id (whether or not it exists)."""
    return isinstance(name, str) and _ID.match(name) is not None


@dataclass(frozen=True)
class UserDatasetInfo:
    dataset_id: str
    owner: str
    name: str
    class_names: tuple[str, ...]
    counts: dict[str, int]
    look: ImageLook
    source: str  # "zip" or "webcam"
    skipped: dict[str, int]
    created: float
    look_why: str = ""  # how the look was chosen from the pictures (lab.image_folder.choose_look)

    def title(self) -> str:
        """How the dropdowns show it."""
        n = sum(self.counts.values())
        return f"{self.name} (yours: {len(self.class_names)} classes, {n:,} images)"


class UserDatasets:
    """The students' datasets on disk under `root`; safe to share between threads.

    Args:
        root: a folder of its own (created if missing).
        cache_size: datasets kept decoded in memory (training and the Data tab reread them).
    """

    def __init__(self, root, cache_size: int = 4, budget: DiskBudget | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        sweep_temporary(self.root)  # half-saved by a process that was killed mid-save
        self._cache: LRU[str, Dataset] = LRU(cache_size)  # decoded datasets, by id
        self.budget = budget
        if budget is not None:
            budget.add_area("dataset", self.root, forget=self._forget)

    def add(self, owner: str, name: str, x: np.ndarray, y: np.ndarray, class_names, look: ImageLook, *,
            source: str, skipped: dict[str, int] | None = None, look_why: str = "") -> UserDatasetInfo:
        """Save a dataset for `owner` and return its info (with the id to train on).

        Raises:
            DatasetError: fewer than two classes, a class with no images, or arrays that disagree.
        """
        x, y = np.asarray(x), np.asarray(y).astype(np.int64).ravel()
        class_names = tuple(str(c) for c in class_names)
        counts = np.bincount(y, minlength=len(class_names)) if len(y) else np.zeros(len(class_names), int)
        if len(class_names) < MIN_CLASSES:
            raise DatasetError(f"A dataset needs at least {MIN_CLASSES} classes; this one has {len(class_names)}.")
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != look.shape() or len(x) != len(y):
            raise DatasetError(f"images must be uint8 of shape (N, {', '.join(map(str, look.shape()))})")
        if len(counts) > len(class_names) or y.min(initial=0) < 0:
            raise DatasetError("labels must be class numbers from 0 to the number of classes - 1")
        empty = [c for c, n in zip(class_names, counts) if n == 0]
        if empty:
            raise DatasetError(f"Every class needs pictures; none in: {', '.join(empty)}.")
        key = secrets.token_hex(5)
        info = UserDatasetInfo(
            dataset_id=f"{slug(name)}@{key}", owner=owner, name=str(name).strip() or slug(name),
            class_names=class_names, counts={c: int(n) for c, n in zip(class_names, counts)}, look=look,
            source=source, skipped=dict(skipped or {}), created=time.time(), look_why=look_why,
        )
        with atomic_folder(self.root / key) as tmp:
            np.savez_compressed(tmp / "data.npz", x=x, y=y)  # np.load reads both kinds
            meta = {**asdict(info), "look": asdict(look), "class_names": list(class_names)}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        for old in self.list(owner)[MAX_DATASETS_PER_OWNER:]:
            self.delete(old.dataset_id, owner)
        if self.budget is not None:
            self.budget.after_save(self.root / key)
        return info

    def storage_note(self, dataset_id: str) -> str:
        """What saving this dataset removed because the class's storage was full ("" if nothing); once."""
        m = _ID.match(dataset_id) if isinstance(dataset_id, str) else None
        return self.budget.note(m.group(2)) if m and self.budget is not None else ""

    def _forget(self, key: str) -> None:
        self._cache.discard_where(lambda dataset_id: dataset_id.endswith("@" + key))

    def add_zip(self, owner: str, zip_path, name: str = ""):
        """Unpack a student's zip of class folders into their own scratch folder, decode it and save it.

        Returns (info, lab.image_folder.ZipImport: the class table and what was skipped).

        Raises:
            lab.archive.ArchiveError: a refused zip or no usable dataset in it (a message for the student).
        """
        from lab.image_folder import import_zip

        name = str(name or "").strip()[:60] or Path(str(zip_path)).stem[:60] or "my-images"
        imported = import_zip(zip_path, self._workdir(owner), name)
        d = imported.dataset
        info = self.add(owner, name, d.x, d.y, d.class_names, d.look, source="zip", skipped=imported.skipped,
                        look_why=imported.look_why)
        return info, dataclasses.replace(imported, storage_note=self.storage_note(info.dataset_id))

    def _workdir(self, owner: str) -> Path:
        # Each student unpacks into a folder of their own, named by a hash (owner ids come from browsers).
        return self.root / ".unpack" / hashlib.sha256(owner.encode()).hexdigest()[:16]

    def list(self, owner: str) -> list[UserDatasetInfo]:
        """`owner`'s datasets, newest first (unreadable folders are skipped)."""
        out = []
        for folder in self.root.iterdir():
            if folder.name.startswith(".") or not (folder / "meta.json").exists():
                continue
            try:
                info = _read_info(folder)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if info.owner == owner:
                out.append(info)
        return sorted(out, key=lambda i: i.created, reverse=True)

    def info(self, dataset_id: str, owner: str | None = None) -> UserDatasetInfo:
        """The dataset's info; with `owner`, only when it is theirs.

        Raises:
            DatasetError: no such dataset (or not the owner's: the message is the same).
        """
        folder = self._folder(dataset_id)
        try:
            info = _read_info(folder)
        except (OSError, ValueError, KeyError, TypeError):
            raise DatasetError(_missing(dataset_id)) from None
        if owner is not None and info.owner != owner:
            raise DatasetError(_missing(dataset_id))
        return info

    def load(self, dataset_id: str, owner: str | None = None) -> Dataset:
        """The dataset, decoded once and kept in a small cache (arrays are read-only)."""
        info = self.info(dataset_id, owner)
        cached = self._cache.get(dataset_id)
        if cached is not None:
            return cached
        with np.load(self._folder(dataset_id) / "data.npz", allow_pickle=False) as f:
            x, y = f["x"], f["y"].astype(np.int64)
        x.setflags(write=False)
        y.setflags(write=False)
        data = Dataset(dataset_id, x, y, info.class_names, info.look)
        self._cache.put(dataset_id, data)
        return data

    def delete(self, dataset_id: str, owner: str) -> None:
        """Remove one of `owner`'s datasets (runs trained on it keep working)."""
        self.info(dataset_id, owner)
        shutil.rmtree(self._folder(dataset_id), ignore_errors=True)
        self._cache.pop(dataset_id, None)

    def clear(self) -> int:
        """Remove every student's dataset (the teacher cleared the class); returns how many went."""
        gone = 0
        for folder in self.root.iterdir():
            if folder.name.startswith(".") or not (folder / "meta.json").exists():
                continue
            shutil.rmtree(folder, ignore_errors=True)
            gone += 1
        shutil.rmtree(self.root / ".unpack", ignore_errors=True)
        self._cache.clear()
        return gone

    def _folder(self, dataset_id: str) -> Path:
        m = _ID.match(dataset_id) if isinstance(dataset_id, str) else None
        if m is None:  # ids come from browsers and API callers: only the fixed form names a folder
            raise DatasetError(_missing(dataset_id))
        folder = self.root / m.group(2)
        if not (folder / "meta.json").exists():
            raise DatasetError(_missing(dataset_id))
        return folder


def _missing(dataset_id) -> str:
    # the name a student gave it, not the id's random part; never whose it is (it may be someone else's)
    name = dataset_id.split("@")[0][:40] if isinstance(dataset_id, str) else "of that name"
    return (f"No dataset “{name}” of yours: it may have been deleted (clearing the class deletes them). Pick "
            "another one, upload a zip in the Data tab or record pictures in the Capture tab; the built-in "
            "datasets still work.")


def _read_info(folder: Path) -> UserDatasetInfo:
    meta = json.loads((folder / "meta.json").read_text())
    return UserDatasetInfo(
        dataset_id=meta["dataset_id"], owner=meta["owner"], name=meta["name"],
        class_names=tuple(meta["class_names"]), counts={str(k): int(v) for k, v in meta["counts"].items()},
        look=ImageLook(**meta["look"]), source=meta["source"], skipped=dict(meta.get("skipped", {})),
        created=float(meta["created"]), look_why=str(meta.get("look_why", "")),
    )


@dataclass(frozen=True)
class DatasetDescription:
    """What a dataset is, for any name a job may take: known without loading or downloading it."""

    name: str  # what a job takes: a built-in's name, or a student's dataset id
    title: str  # what the student calls it: the built-in's name, or the name they gave their own
    look: ImageLook
    class_names: tuple[str, ...]
    builtin: bool
    description: str  # a built-in's one-line description; "" for a student's own
    source: str  # "bundled" or "download" (built-ins), "zip" or "webcam" (a student's own)
    look_why: str = ""  # a student's own: how its look was chosen from the pictures

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class Catalog:
    """Every dataset a job may name: the built-in registry, then the students' own.

    The JobManager and the tabs load through one Catalog, so training, the Data tab and the
    run store agree on what a name means.
    """

    def __init__(self, user: UserDatasets | None = None):
        self.user = user

    def load(self, name: str, owner: str | None = None) -> Dataset:
        if is_dataset_id(name):
            if self.user is None:
                raise DatasetError(_missing(name))
            return self.user.load(name, owner)
        return datasets.load(name)

    def describe(self, name: str, owner: str | None = None) -> DatasetDescription:
        """What the dataset called `name` is (look, classes, where it comes from), loading nothing.

        Raises:
            DatasetError: no such dataset, or a student's own that is not `owner`'s (the same message).
        """
        if is_dataset_id(name):
            if self.user is None:
                raise DatasetError(_missing(name))
            info = self.user.info(name, owner)
            return DatasetDescription(name, info.name, info.look, info.class_names, builtin=False, description="",
                                source=info.source, look_why=info.look_why)
        spec = datasets.DATASETS.get(name) if isinstance(name, str) else None
        if spec is None:
            raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(datasets.DATASETS)}")
        return DatasetDescription(name, name, spec.look, spec.class_names, builtin=True, description=spec.description,
                            source="download" if spec.download_mb else "bundled")

    def title(self, name: str, owner: str | None = None) -> str:
        """What a student calls the dataset: a built-in's name, or the name they gave their own."""
        try:
            return self.describe(name, owner).title
        except DatasetError:
            return name.split("@")[0]

    def check(self, name: str, owner: str) -> None:
        """Raise DatasetError when `owner` may not train on `name` (someone else's, or deleted)."""
        if is_dataset_id(name):
            if self.user is None:
                raise DatasetError(_missing(name))
            self.user.info(name, owner)
