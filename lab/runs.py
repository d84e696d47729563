"""RunStore: one folder per finished (or stopped) run, surviving restarts of the app.

runs/<run_id>/ holds hparams.json, meta.json (owner, state, classes, how inputs look),
metrics.csv and model.keras, the same curves as TensorBoard event files (train/ and validation/:
`%tensorboard --logdir runs`), lab.export's downloads once asked for (exports/), and once the job
has evaluated it, evaluation.json with mistakes.npz (lab.evaluation). Loading is cached, with a compiled predict function.

Privacy: run ids are unguessable, and every lookup a student's request makes passes its
`owner`: another student's run gets exactly the answer a missing one gets (RunNotFound).
`owner=None` is for trusted callers only (scripts, tests, the teacher).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lab.evaluation import Evaluation
from lab.hparams import HParams, validate
from lab.images import ImageLook
from lab.slots import global_draws
from lab.storage import LRU, atomic_folder, sweep_temporary


# Ids are made here (a sortable time, then 64 random bits); anything longer is refused before the
# disk is touched, so a hostile id can neither reach the file system nor echo its paths back.
MAX_RUN_ID = 64
EVALUATION, MISTAKES = "evaluation.json", "mistakes.npz"  # lab.evaluation's figures, and its pictures
_RUN_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")


class RunNotFound(KeyError):
    def __str__(self):
        return self.args[0] if self.args else "run not found"


def new_run_id() -> str:
    """A run id: when it was made (sortable, readable) and 64 random bits (unguessable)."""
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(8)


def not_found(run_id) -> RunNotFound:
    """The one answer for a run that is missing, malformed or someone else's."""
    shown = run_id if isinstance(run_id, str) and len(run_id) <= MAX_RUN_ID else "(that id)"
    return RunNotFound(f"no run called {shown!r} of yours (train one in the Train tab)")


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    owner: str
    created: float
    state: str  # done, stopped or diverged
    hparams: HParams
    class_names: tuple[str, ...]
    look: ImageLook
    val_accuracy: float | None
    dataset_title: str = ""  # how the student named their own dataset ("my webcam"); "" for built-ins
    best_val_accuracy: float | None = None
    train_seconds: float | None = None  # fit's wall time; None for runs saved before it was recorded
    images_per_second: float | None = None  # training speed over the last epoch; None likewise

    def title(self) -> str:
        """What the run is (`small_cnn · lr 0.03 · 96.1%`): lab.compare.run_name."""
        from lab.compare import run_name

        return run_name(self)


@dataclass
class LoadedRun:
    info: RunInfo
    model: object  # keras.Model
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # what is built once per loaded model and kept with it (lab.explain's gradient sub-models)
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def predict(self, batch):
        """Probabilities for a float32 batch; predict_on_batch reuses one compiled function.

        The lock serialises callers: the first call builds the function, and it is fast after.
        """
        with self._lock:
            return self.model.predict_on_batch(batch)


class RunStore:
    """Runs on disk under `root`; safe to share between threads."""

    budget = None  # a lab.storage.DiskBudget (the app sets one): each save removes the oldest runs/datasets beyond it

    def __init__(self, root: str | os.PathLike, cache_size: int = 8):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        sweep_temporary(self.root)
        self._cache: LRU[str, LoadedRun] = LRU(cache_size)  # loaded models, with their compiled predict

    def save(self, *, owner: str, hparams: HParams, metrics: list[dict], model, class_names, look: ImageLook, state: str,
             dataset_title: str = "", train_seconds: float | None = None, images_per_second: float | None = None) -> str:
        """Write a run atomically (a temporary folder renamed into place); return its id.

        `train_seconds` and `images_per_second` (how long fit took, how fast it went) go to the runs board.
        """
        run_id = new_run_id()
        df = pd.DataFrame(metrics)
        val = df["val_accuracy"].dropna() if "val_accuracy" in df else pd.Series(dtype=float)
        meta = {
            "run_id": run_id,
            "owner": owner,
            "created": time.time(),
            "state": state,
            "class_names": list(class_names),
            "look": asdict(look),
            "val_accuracy": float(val.iloc[-1]) if len(val) else None,
            "dataset_title": dataset_title,
            "best_val_accuracy": float(val.max()) if len(val) else None,
            "train_seconds": train_seconds,
            "images_per_second": images_per_second,
        }
        with atomic_folder(self.root / run_id) as tmp:
            (tmp / "hparams.json").write_text(json.dumps(hparams.to_dict(), indent=2))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            df.to_csv(tmp / "metrics.csv", index=False)
            model.save(tmp / "model.keras")
            write_events(tmp, metrics)
        if self.budget is not None:  # budget.note(run_id) then says what had to go
            self.budget.after_save(self.root / run_id)
        return run_id

    def _info(self, folder: Path) -> RunInfo:
        meta = json.loads((folder / "meta.json").read_text())
        hp = validate(json.loads((folder / "hparams.json").read_text()))
        return RunInfo(
            run_id=meta["run_id"], owner=meta["owner"], created=meta["created"], state=meta["state"],
            hparams=hp, class_names=tuple(meta["class_names"]), look=ImageLook(**meta["look"]),
            val_accuracy=meta.get("val_accuracy"), dataset_title=str(meta.get("dataset_title") or ""),
            best_val_accuracy=_number(meta.get("best_val_accuracy")),
            train_seconds=_number(meta.get("train_seconds")), images_per_second=_number(meta.get("images_per_second")),
        )

    def list(self, owner: str | None = None) -> list[RunInfo]:
        """Runs newest first; only `owner`'s when given. Unreadable folders are skipped."""
        infos = []
        for folder in self.root.iterdir():
            if folder.name.startswith(".") or not (folder / "model.keras").exists():
                continue
            try:
                info = self._info(folder)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if owner is None or info.owner == owner:
                infos.append(_with_best(info, folder))
        return sorted(infos, key=lambda i: i.created, reverse=True)

    def info(self, run_id: str, owner: str | None = None) -> RunInfo:
        """The run's info; with `owner`, only when it is theirs (else RunNotFound, as for a missing one)."""
        folder = self._folder(run_id)
        try:
            info = self._info(folder)
        except (OSError, ValueError, KeyError, TypeError):
            raise not_found(run_id) from None
        if owner is not None and info.owner != owner:
            raise not_found(run_id)
        return _with_best(info, folder)

    def metrics(self, run_id: str, owner: str | None = None) -> pd.DataFrame:
        self.info(run_id, owner)
        return pd.read_csv(self._folder(run_id) / "metrics.csv")

    def latest(self, owner: str | None = None) -> RunInfo | None:
        runs = self.list(owner)
        return runs[0] if runs else None

    def load(self, run_id: str, owner: str | None = None) -> LoadedRun:
        """The run's model, loaded once and kept in a small LRU cache; with `owner`, only theirs."""
        cached = self._cache.get(run_id) if isinstance(run_id, str) else None
        if cached is not None:
            if owner is not None and cached.info.owner != owner:
                raise not_found(run_id)
            return cached
        info = self.info(run_id, owner)
        import keras

        import models  # noqa: F401  (registers the custom layers saved runs may hold, e.g. tiny_vit's)

        folder = self._folder(run_id)
        with global_draws():  # building the layers draws seeds: not while a job seeds itself
            loaded = LoadedRun(info, keras.saving.load_model(folder / "model.keras", compile=False))
        # Build the compiled predict function now, so a student's first prediction is fast too.
        loaded.predict(np.zeros((1, *loaded.info.look.shape()), np.float32))
        self._cache.put(run_id, loaded)
        return loaded

    def delete(self, run_id: str, owner: str | None = None) -> None:
        """Remove a run (with `owner`, only one of theirs)."""
        self.info(run_id, owner)
        shutil.rmtree(self._folder(run_id))
        self.forget(run_id)

    def forget(self, run_id: str) -> None:
        """Drop a run's loaded model from memory (after its folder went: DiskBudget calls this)."""
        self._cache.pop(run_id, None)

    def save_evaluation(self, run_id: str, evaluation: Evaluation) -> None:
        """Keep a run's evaluation in its folder: the mistakes' pictures (mistakes.npz), then
        evaluation.json, each written whole and renamed into place (the json last: it is what says
        the evaluation is there). Trusted callers only: the job, or of_run after its owner check."""
        folder = self._folder(run_id)
        _write_whole(folder / MISTAKES, lambda f: np.savez_compressed(f, images=evaluation.images))
        _write_whole(folder / EVALUATION, lambda f: f.write(json.dumps(evaluation.to_json(), indent=1).encode()))

    def evaluation(self, run_id: str, owner: str | None = None) -> Evaluation | None:
        """The run's saved evaluation; None when it has none yet (lab.evaluation.of_run makes one).
        With `owner`, only theirs (else RunNotFound, as for a missing run)."""
        self.info(run_id, owner)
        folder = self._folder(run_id)
        try:
            data = json.loads((folder / EVALUATION).read_text())
            with np.load(folder / MISTAKES, allow_pickle=False) as f:
                images = f["images"]
            return Evaluation.from_json(data, images)
        except (OSError, ValueError, KeyError, TypeError):  # none yet, or damaged: evaluate again
            return None

    def _folder(self, run_id: str) -> Path:
        # run ids come from browsers and API callers: only the form ids are made in names a folder
        # (no path separators, no dots, no over-long names that would echo the runs path in an error)
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise not_found(run_id)
        folder = self.root / run_id
        if not (folder / "model.keras").exists():
            raise not_found(run_id)
        return folder


TENSORBOARD = {"train": ("loss", "accuracy"), "validation": ("val_loss", "val_accuracy")}  # subfolder -> row keys


def write_events(folder: Path, rows: list[dict]) -> bool:
    """The run's curves as TensorBoard event files: `folder`/train and `folder`/validation, each with
    `loss` and `accuracy` scalars at the optimizer step (TensorBoard overlays the two folders, as for
    Keras' TensorBoard callback). The rows are metrics.csv's, so both tell the same story.

    Returns False (and the run is saved without them) where TensorBoard is not installed.
    """
    try:
        import tensorflow as tf

        tf.summary.scalar  # noqa: B018  (provided by the tensorboard package)
    except (ImportError, AttributeError):
        return False
    for sub, keys in TENSORBOARD.items():
        points = [(int(r["step"]), {k.removeprefix("val_"): float(r[k]) for k in keys
                                    if r.get(k) is not None and r[k] == r[k]}) for r in rows if "step" in r]
        points = [(step, values) for step, values in points if values]
        if not points:
            continue
        writer = tf.summary.create_file_writer(str(folder / sub))
        try:
            with writer.as_default():
                for step, values in points:
                    for name, value in values.items():
                        tf.summary.scalar(name, value, step=step)
        finally:
            writer.close()
    return True


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _with_best(info: RunInfo, folder: Path) -> RunInfo:
    """A run saved before meta.json recorded its best validation accuracy: read it from its metrics
    (only the runs a caller may see pay for it)."""
    if info.best_val_accuracy is not None or info.val_accuracy is None:
        return info
    try:
        val = pd.read_csv(folder / "metrics.csv", usecols=lambda c: c == "val_accuracy").get("val_accuracy")
    except (OSError, ValueError):
        return info
    val = val.dropna() if val is not None else ()
    return dataclasses.replace(info, best_val_accuracy=float(val.max())) if len(val) else info


def _write_whole(path: Path, write) -> None:
    """`write(file)` into a temporary file beside `path`, then rename it over `path` (never half a file)."""
    tmp = path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
