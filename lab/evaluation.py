"""Evaluate a run: where its model is right and wrong on the run's own validation images.

- `build`: the model's probabilities for the validation images -> an `Evaluation`: the confusion
  matrix (rows = true class, columns = predicted), per-class precision, recall and support, the
  accuracy, and the mistakes ranked by confidence (at most MAX_MISTAKES kept, with their pictures).
- `evaluate_model`: a model over a run's validation split (lab.datasets.split, exactly as training
  made it); `after_job` does that in the job, on the accelerator, as soon as the run is saved.
- `of_run`: a saved run's evaluation; a run from before evaluations were kept is evaluated once,
  on demand, and saved.
- `Evaluation.verdicts`: plain words when a run is no better than guessing, was measured on very
  few pictures, or overfits badly, with what to try.

Plain numpy around one model call; lab.runs.RunStore keeps the result (evaluation.json and
mistakes.npz in the run's folder). `runs` and `catalog` arguments are a RunStore and a
lab.user_datasets.Catalog, passed in (this module sits below both).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from lab import datasets
from lab.dataset_base import DatasetError
from lab.images import to_model_range

log = logging.getLogger(__name__)

MAX_MISTAKES = 50  # pictures kept per run (bounded disk): the most confident mistakes, every cell first
PREDICT_BATCH = 64  # images per model call when a saved run is evaluated on demand
# Verdicts: "near chance" is within this share of the way from chance to 100%; "few pictures" is
# fewer than MIN_PICTURES validation images, or a class with fewer than MIN_PER_CLASS; "overfitting
# badly" is training accuracy this far above validation accuracy.
NEAR_CHANCE = 0.15
MIN_PICTURES = 30
MIN_PER_CLASS = 5
OVERFIT_GAP = 0.2
WEIGHTS_NOTE = {
    "stopped": "Training was stopped: these figures are those of the weights it had when it stopped, the "
               "weights the run kept.",
    "diverged": "The loss diverged: these figures are those of the last good weights, the weights the run kept.",
}


class EvaluationError(RuntimeError):
    """A run cannot be evaluated (its dataset is gone, say); the message says why."""


@dataclass(frozen=True)
class Mistake:
    index: int  # the picture's place in the dataset
    true: int  # class numbers
    predicted: int
    confidence: float  # the model's probability for the class it (wrongly) chose


@dataclass(frozen=True)
class ClassScore:
    precision: float | None  # of the pictures called this class, the share that were; None: never predicted
    recall: float | None  # of the pictures of this class, the share found; None: no pictures of it
    support: int  # validation pictures of this class


@dataclass(frozen=True, eq=False)
class Evaluation:
    """One run's figures on its validation images."""

    classes: tuple[str, ...]
    confusion: np.ndarray  # int, classes x classes: [true, predicted] -> pictures
    mistakes: tuple[Mistake, ...]  # the kept ones, most confident first
    images: np.ndarray  # uint8 (kept mistakes, H, W, C): mistakes[i]'s picture is images[i]
    state: str = "done"  # done, stopped or diverged: which weights these figures are of
    train_accuracy: float | None = None  # the last training accuracy of the run (for the overfitting verdict)

    @property
    def total(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / self.total) if self.total else 0.0

    @property
    def chance(self) -> float:
        """What guessing a class at random scores."""
        return 1.0 / len(self.classes)

    def per_class(self) -> dict[str, ClassScore]:
        right = np.diag(self.confusion)
        predicted, support = self.confusion.sum(axis=0), self.confusion.sum(axis=1)
        return {name: ClassScore(float(right[i] / predicted[i]) if predicted[i] else None,
                                 float(right[i] / support[i]) if support[i] else None, int(support[i]))
                for i, name in enumerate(self.classes)}

    def cell(self, true: int | None = None, predicted: int | None = None) -> list[int]:
        """Indices into `mistakes` (most confident first) with that true and predicted class (None: any)."""
        return [i for i, m in enumerate(self.mistakes)
                if (true is None or m.true == true) and (predicted is None or m.predicted == predicted)]

    def confusions(self, limit: int = 3) -> list[tuple[int, int, int]]:
        """The most frequent mistakes as (true, predicted, pictures), largest first."""
        wrong = self.confusion * (1 - np.eye(len(self.classes), dtype=self.confusion.dtype))
        order = np.argsort(-wrong, axis=None, kind="stable")[:limit]
        cells = zip(*np.unravel_index(order, wrong.shape))
        return [(int(t), int(p), int(wrong[t, p])) for t, p in cells if wrong[t, p]]

    def weights_note(self) -> str:
        """For a stopped or diverged run: which weights these figures are of ("" for a finished run)."""
        return WEIGHTS_NOTE.get(self.state, "")

    def verdicts(self) -> list[str]:
        """Plain-words warnings, each with what to try ([] when the run looks healthy)."""
        out = []
        support = self.confusion.sum(axis=1)
        if self.total < MIN_PICTURES or support.min() < MIN_PER_CLASS:
            least = int(np.argmin(support))
            out.append(f"It was measured on only {self.total} validation pictures ({support[least]} of "
                       f"“{self.classes[least]}”): one picture more or less right moves the score by "
                       f"{1 / max(self.total, 1):.0%}, so it is rough. Add pictures (20 or more of each class) "
                       "for a score you can trust.")
        if self.state != "done":  # a stopped run is low because it stopped; a diverged one says so already
            return out
        acc, chance = self.accuracy, self.chance
        if acc < chance + NEAR_CHANCE * (1 - chance):
            how = ("worse than" if acc < chance - 1e-9 else "no better than" if acc <= chance + 1e-9
                   else "hardly better than")
            out.append(f"{acc:.1%} is {how} guessing ({chance:.0%} with {len(self.classes)} classes): the model has "
                       "not learned to tell the classes apart. Try more pictures of each class, more epochs, another "
                       "learning rate, or for photos a transfer model (mobilenet_v3_small).")
        elif self.train_accuracy is not None and self.train_accuracy - acc >= OVERFIT_GAP:
            out.append(f"Training accuracy is {self.train_accuracy:.0%} but validation only {acc:.0%}: the model "
                       "memorises its training pictures instead of learning what the classes look like "
                       "(overfitting). Try augmentation, fewer epochs, a smaller model, or more pictures.")
        return out

    # -- stored and API forms ----------------------------------------------------------------
    def to_json(self) -> dict:
        """Plain JSON (evaluation.json and the /evaluate answer, less the pictures)."""
        return {
            "classes": list(self.classes),
            "confusion": self.confusion.astype(int).tolist(),
            "per_class": {name: {"precision": s.precision, "recall": s.recall, "support": s.support}
                          for name, s in self.per_class().items()},
            "accuracy": self.accuracy,
            "mistakes": [{"index": m.index, "true": self.classes[m.true], "predicted": self.classes[m.predicted],
                          "confidence": m.confidence} for m in self.mistakes],
            "state": self.state,
            "train_accuracy": self.train_accuracy,
            "note": self.weights_note(),
            "verdicts": self.verdicts(),
        }

    @classmethod
    def from_json(cls, data: dict, images: np.ndarray) -> Evaluation:
        """Back from to_json() and the pictures (ValueError/KeyError/TypeError when malformed)."""
        classes = tuple(str(c) for c in data["classes"])
        number = {name: i for i, name in enumerate(classes)}
        confusion = np.asarray(data["confusion"], dtype=np.int64)
        mistakes = tuple(Mistake(int(m["index"]), number[m["true"]], number[m["predicted"]], float(m["confidence"]))
                         for m in data["mistakes"])
        if confusion.shape != (len(classes), len(classes)) or len(images) != len(mistakes):
            raise ValueError("evaluation.json does not match its classes or pictures")
        train = data.get("train_accuracy")
        return cls(classes, confusion, mistakes, images, str(data.get("state", "done")),
                   float(train) if train is not None else None)


def build(probabilities, y_true, indices, images, classes, state: str = "done",
          train_accuracy: float | None = None, keep: int = MAX_MISTAKES) -> Evaluation:
    """An Evaluation from a model's class probabilities for the validation pictures.

    Args:
        probabilities: (n, classes) floats, row i for picture i.
        y_true: (n,) the true classes.
        indices: (n,) each picture's place in the dataset (what a mistake's `index` says).
        images: the dataset's pictures, uint8 (N, H, W, C), indexed by `indices`.
        classes: class names, in label order.
        state, train_accuracy: as the Evaluation's fields.
        keep: at most this many mistakes keep their picture: the most confident one of every
            (true, predicted) cell first, then each cell's second, and so on, so that every cell
            with mistakes shows some; they come out most confident first.
    """
    probs = np.asarray(probabilities, dtype=np.float32)
    y_true, indices = np.asarray(y_true, dtype=np.int64), np.asarray(indices, dtype=np.int64)
    k = len(classes)
    predicted = probs.argmax(axis=1)
    confidence = probs[np.arange(len(probs)), predicted]
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y_true, predicted), 1)
    wrong = np.flatnonzero(predicted != y_true)
    # rank of each mistake within its cell, most confident first
    by_confidence = wrong[np.argsort(-confidence[wrong], kind="stable")]
    seen: dict[tuple[int, int], int] = {}
    rank = {}
    for i in by_confidence:
        cell = (int(y_true[i]), int(predicted[i]))
        rank[i] = seen[cell] = seen.get(cell, -1) + 1
    kept = sorted(by_confidence, key=lambda i: (rank[i], -confidence[i]))[:keep]
    kept = sorted(kept, key=lambda i: -confidence[i])
    mistakes = tuple(Mistake(int(indices[i]), int(y_true[i]), int(predicted[i]), round(float(confidence[i]), 4))
                     for i in kept)
    images = np.asarray(images)
    pictures = images[[m.index for m in mistakes]] if mistakes else np.zeros((0, *images.shape[1:]), np.uint8)
    return Evaluation(tuple(classes), confusion, mistakes, pictures.astype(np.uint8), state, train_accuracy)


def final_train_accuracy(rows) -> float | None:
    """The last training accuracy of a run's metric rows (list of dicts or a DataFrame)."""
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    values = [r.get("accuracy") for r in records if r.get("accuracy") is not None]
    values = [float(v) for v in values if v == v]  # not NaN
    return values[-1] if values else None


def evaluate_model(model, data, hp, rows=(), state: str = "done", batch: int = PREDICT_BATCH) -> Evaluation:
    """Run a freshly trained `model` over the run's validation images (in the job, on the accelerator).

    The batches are lab.pipeline's validation batches of `batch` images (fixed shapes, the last one
    padded), as training measured them, so the accuracy of a finished run is its last val_accuracy.
    """
    from lab.pipeline import make_eval_pipeline  # TensorFlow's tf.data: only where a model runs

    _, val = datasets.split(data, hp.validation_split, hp.seed)
    probs = np.asarray(model.predict(make_eval_pipeline(data.x[val], data.y[val], batch), verbose=0))[: len(val)]
    return build(probs, data.y[val], val, data.x, data.class_names, state, final_train_accuracy(rows))


def evaluate_loaded(loaded, data, rows=()) -> Evaluation:
    """A saved run (lab.runs.LoadedRun) over its validation images, in batches of PREDICT_BATCH."""
    hp = loaded.info.hparams
    _, val = datasets.split(data, hp.validation_split, hp.seed)
    probs = [np.asarray(loaded.predict(to_model_range(data.x[val[i:i + PREDICT_BATCH]])), dtype=np.float32)
             for i in range(0, len(val), PREDICT_BATCH)]
    probs = np.concatenate(probs) if probs else np.zeros((0, data.num_classes), np.float32)
    return build(probs, data.y[val], val, data.x, data.class_names, loaded.info.state, final_train_accuracy(rows))


def after_job(runs, run_id: str, model, data, hp, rows, state: str, batch: int, progress=None) -> str:
    """Evaluate a job's model as soon as its run is saved, and keep the evaluation with the run.

    Returns the verdicts for the job's message (" ⚠️ ..." or ""). Never raises: the run is already
    saved, and a run without an evaluation is evaluated on demand later (of_run).
    """
    if not hasattr(runs, "save_evaluation"):  # a store that keeps no evaluations (tests' stand-ins)
        return ""
    if progress is not None:
        progress.phase = "evaluating the model on its validation images"
    try:
        evaluation = evaluate_model(model, data, hp, rows, state, batch)
        runs.save_evaluation(run_id, evaluation)
    except Exception:  # noqa: BLE001 (the run is kept either way)
        log.warning("evaluating run %s failed; it will be evaluated on demand", run_id, exc_info=True)
        return ""
    return verdict_text(evaluation.verdicts())


VERDICT_MARK = " ⚠️ "  # where a job's message turns to the verdicts (the Train tab puts them on a line of their own)


def verdict_text(verdicts: list[str]) -> str:
    return VERDICT_MARK + " ".join(verdicts) if verdicts else ""


_ON_DEMAND = threading.Lock()  # one on-demand evaluation at a time: each is a pass over a whole validation split


def of_run(runs, catalog, run_id: str, owner: str | None = None) -> Evaluation:
    """The evaluation of a saved run; one saved before evaluations were kept is evaluated now, once.

    Raises:
        lab.runs.RunNotFound: no such run of `owner`'s (another student's gets the same answer).
        EvaluationError: the run cannot be evaluated (its dataset is gone).
    """
    found = runs.evaluation(run_id, owner)
    if found is not None:
        return found
    with _ON_DEMAND:
        found = runs.evaluation(run_id, owner)  # another request may have just made it
        if found is not None:
            return found
        loaded = runs.load(run_id, owner)
        info = loaded.info
        try:
            data = catalog.load(info.hparams.dataset, info.owner)
        except DatasetError as e:
            raise EvaluationError(f"this run cannot be evaluated: {e}") from None
        if tuple(data.class_names) != tuple(info.class_names):
            raise EvaluationError("this run cannot be evaluated: its dataset's classes have changed since")
        evaluation = evaluate_loaded(loaded, data, runs.metrics(run_id, owner))
        runs.save_evaluation(run_id, evaluation)
        return evaluation
