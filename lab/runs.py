"""RunStore: one folder per finished (or stopped) run, surviving restarts of the app.

runs/<run_id>/ holds hparams.json, meta.json (owner, state, classes, how inputs look),
metrics.csv and model.keras. Loading is cached, with a compiled predict function.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lab.hparams import HParams, validate
from lab.images import ImageLook


class RunNotFound(KeyError):
    def __str__(self):
        return self.args[0] if self.args else "run not found"


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

    def title(self) -> str:
        acc = f"{self.val_accuracy:.1%}" if self.val_accuracy is not None else "n/a"
        when = time.strftime("%H:%M:%S", time.localtime(self.created))
        dataset = self.hparams.dataset.split("@")[0]  # a student's own dataset: its name, not its private id
        return f"{when} · {self.hparams.model} on {dataset} · val acc {acc} · {self.state}"


@dataclass
class LoadedRun:
    info: RunInfo
    model: object  # keras.Model
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def predict(self, batch):
        """Probabilities for a float32 batch; predict_on_batch reuses one compiled function.

        The lock serialises callers: the first call builds the function, and it is fast after.
        """
        with self._lock:
            return self.model.predict_on_batch(batch)


class RunStore:
    """Runs on disk under `root`; safe to share between threads."""

    def __init__(self, root: str | os.PathLike, cache_size: int = 8):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, LoadedRun] = OrderedDict()
        self._cache_size = cache_size

    def save(self, *, owner: str, hparams: HParams, metrics: list[dict], model, class_names, look: ImageLook, state: str) -> str:
        """Write a run atomically (a temporary folder renamed into place); return its id."""
        run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        tmp = self.root / f".tmp-{run_id}"
        tmp.mkdir(parents=True)
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
        }
        (tmp / "hparams.json").write_text(json.dumps(hparams.to_dict(), indent=2))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        df.to_csv(tmp / "metrics.csv", index=False)
        model.save(tmp / "model.keras")
        tmp.rename(self.root / run_id)
        return run_id

    def _info(self, folder: Path) -> RunInfo:
        meta = json.loads((folder / "meta.json").read_text())
        hp = validate(json.loads((folder / "hparams.json").read_text()))
        return RunInfo(
            run_id=meta["run_id"], owner=meta["owner"], created=meta["created"], state=meta["state"],
            hparams=hp, class_names=tuple(meta["class_names"]), look=ImageLook(**meta["look"]),
            val_accuracy=meta.get("val_accuracy"),
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
                infos.append(info)
        return sorted(infos, key=lambda i: i.created, reverse=True)

    def info(self, run_id: str) -> RunInfo:
        folder = self._folder(run_id)
        return self._info(folder)

    def metrics(self, run_id: str) -> pd.DataFrame:
        return pd.read_csv(self._folder(run_id) / "metrics.csv")

    def latest(self, owner: str | None = None) -> RunInfo | None:
        runs = self.list(owner)
        return runs[0] if runs else None

    def load(self, run_id: str) -> LoadedRun:
        """The run's model, loaded once and kept in a small LRU cache."""
        with self._lock:
            if run_id in self._cache:
                self._cache.move_to_end(run_id)
                return self._cache[run_id]
        import keras

        import models  # noqa: F401  (registers the custom layers saved runs may hold, e.g. tiny_vit's)

        folder = self._folder(run_id)
        loaded = LoadedRun(self._info(folder), keras.saving.load_model(folder / "model.keras", compile=False))
        # Build the compiled predict function now, so a student's first prediction is fast too.
        loaded.predict(np.zeros((1, *loaded.info.look.shape()), np.float32))
        with self._lock:
            self._cache[run_id] = loaded
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return loaded

    def delete(self, run_id: str) -> None:
        shutil.rmtree(self._folder(run_id))
        with self._lock:
            self._cache.pop(run_id, None)

    def _folder(self, run_id: str) -> Path:
        # run ids come from browsers and API callers: never let one name a path outside root
        if not isinstance(run_id, str) or not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise RunNotFound(f"no run called {run_id!r}")
        folder = self.root / run_id
        if not (folder / "model.keras").exists():
            raise RunNotFound(f"no run called {run_id!r}")
        return folder
