"""Evaluating a run (issue 12): the figures against a hand-computed case and against Keras' metrics,
the mistakes kept, the verdicts, the charts, the copy kept with the run, and the job that saves it."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from lab import charts, evaluation
from lab.dataset_base import Dataset
from lab.evaluation import MAX_MISTAKES, Evaluation, build
from lab.hparams import validate
from lab.images import ImageLook
from lab.runs import EVALUATION, MISTAKES, RunNotFound, RunStore

# Six pictures, three classes. Picture i has true class Y[i]; the model's top class is P's argmax:
#   0: a -> a (0.9)   1: b -> b (0.7)   2: b -> a (0.6)   3: c -> c (0.8)   4: a -> b (0.6)   5: b -> c (0.7)
P = np.array([[.9, .1, 0], [.2, .7, .1], [.6, .3, .1], [.1, .1, .8], [.3, .6, .1], [.1, .2, .7]])
Y = np.array([0, 1, 1, 2, 0, 1])
IMAGES = np.arange(20 * 4, dtype=np.uint8).reshape(20, 2, 2, 1)  # picture k is all its own numbers
INDICES = np.arange(6) + 10  # the six are the dataset's pictures 10..15


def test_the_figures_of_a_hand_computed_case():
    ev = build(P, Y, INDICES, IMAGES, ("a", "b", "c"))
    # rows true, columns predicted:  a: 1 right, 1 taken for b;  b: 1 for a, 1 right, 1 for c;  c: 1 right
    assert ev.confusion.tolist() == [[1, 1, 0], [1, 1, 1], [0, 0, 1]]
    assert ev.accuracy == pytest.approx(3 / 6)
    scores = ev.per_class()
    # precision: right / called that class (columns 2, 2, 2); recall: right / pictures of it (rows 2, 3, 1)
    assert [scores[c].precision for c in "abc"] == pytest.approx([1 / 2, 1 / 2, 1 / 2])
    assert [scores[c].recall for c in "abc"] == pytest.approx([1 / 2, 1 / 3, 1])
    assert [scores[c].support for c in "abc"] == [2, 3, 1]
    # the three mistakes, most confident first: picture 5 (0.7), then 2 and 4 (0.6 each)
    assert [m.index for m in ev.mistakes][0] == 15 and {m.index for m in ev.mistakes} == {12, 14, 15}
    assert [m.confidence for m in ev.mistakes] == pytest.approx([0.7, 0.6, 0.6])
    assert [(m.true, m.predicted) for m in ev.mistakes if m.index == 12] == [(1, 0)]
    # each kept mistake's picture is its own dataset picture
    assert all((ev.images[i] == IMAGES[m.index]).all() for i, m in enumerate(ev.mistakes))
    assert ev.cell(1, 2) == [0] and ev.cell(true=1) == [0, [m.index for m in ev.mistakes].index(12)]


def test_a_class_never_predicted_has_no_precision_and_json_says_null():
    ev = build(np.array([[.9, .1], [.8, .2]]), np.array([0, 1]), np.array([0, 1]), IMAGES, ("x", "y"))
    assert ev.per_class()["y"].precision is None and ev.per_class()["y"].recall == 0
    assert json.loads(json.dumps(ev.to_json()))["per_class"]["y"]["precision"] is None


def test_the_figures_match_keras_metrics():
    """Accuracy, and per-class precision and recall of the top class, as Keras computes them."""
    import keras

    rng = np.random.default_rng(0)
    k, n = 5, 400
    probs = rng.dirichlet(np.ones(k), size=n).astype(np.float32)
    y = np.where(rng.random(n) < 0.5, probs.argmax(1), rng.integers(0, k, n))  # better than chance
    ev = build(probs, y, np.arange(n), np.zeros((n, 1, 1, 1), np.uint8), tuple("ABCDE"))
    acc = keras.metrics.SparseCategoricalAccuracy()
    acc.update_state(y, probs)
    assert ev.accuracy == pytest.approx(float(acc.result()), abs=1e-6)
    onehot = np.eye(k, dtype=np.float32)[y]
    for i, name in enumerate(ev.classes):
        precision, recall = keras.metrics.Precision(top_k=1, class_id=i), keras.metrics.Recall(top_k=1, class_id=i)
        precision.update_state(onehot, probs)
        recall.update_state(onehot, probs)
        assert ev.per_class()[name].precision == pytest.approx(float(precision.result()), abs=1e-6)
        assert ev.per_class()[name].recall == pytest.approx(float(recall.result()), abs=1e-6)


def test_at_most_fifty_mistakes_are_kept_every_cell_first_most_confident_first():
    rng = np.random.default_rng(1)
    k, n = 6, 600
    probs = rng.dirichlet(np.ones(k) * 0.5, size=n)
    y = rng.integers(0, k, n)
    images = rng.integers(0, 255, (n, 3, 3, 3), dtype=np.uint8)
    ev = build(probs, y, np.arange(n), images, tuple("abcdef"))
    wrong = int(ev.confusion.sum() - np.trace(ev.confusion))
    assert wrong > MAX_MISTAKES and len(ev.mistakes) == MAX_MISTAKES == len(ev.images)
    confidences = [m.confidence for m in ev.mistakes]
    assert confidences == sorted(confidences, reverse=True)
    cells = {(t, p) for t in range(k) for p in range(k) if t != p and ev.confusion[t, p]}
    assert cells == {(m.true, m.predicted) for m in ev.mistakes}  # 30 cells: every one shows its worst
    for t, p in cells:  # ... and that is the cell's most confident mistake
        in_cell = [i for i in range(n) if y[i] == t and probs[i].argmax() == p]
        assert ev.mistakes[ev.cell(t, p)[0]].confidence == pytest.approx(max(probs[i].max() for i in in_cell), abs=1e-4)


def test_json_round_trip():
    ev = build(P, Y, INDICES, IMAGES, ("a", "b", "c"), state="stopped", train_accuracy=0.75)
    back = Evaluation.from_json(json.loads(json.dumps(ev.to_json())), ev.images)
    assert back.confusion.tolist() == ev.confusion.tolist() and back.mistakes == ev.mistakes
    assert (back.state, back.train_accuracy, back.classes) == ("stopped", 0.75, ("a", "b", "c"))
    with pytest.raises(ValueError):
        Evaluation.from_json(ev.to_json(), ev.images[:1])  # pictures that do not match


def _two_class(right_of_a: int, right_of_b: int, per_class: int, **kw) -> Evaluation:
    """A two-class evaluation with `per_class` pictures of each, that many of each right."""
    y = np.repeat([0, 1], per_class)
    said = np.concatenate([np.r_[np.zeros(right_of_a), np.ones(per_class - right_of_a)],
                           np.r_[np.ones(right_of_b), np.zeros(per_class - right_of_b)]]).astype(int)
    probs = np.eye(2)[said] * 0.8 + 0.1
    return build(probs, y, np.arange(len(y)), np.zeros((len(y), 1, 1, 1), np.uint8), ("cats", "dogs"), **kw)


def test_verdicts_in_plain_words():
    below = _two_class(3, 2, 6)  # 5 of 12 right: 41.7%, with two classes
    said = " ".join(below.verdicts())
    assert below.accuracy == pytest.approx(5 / 12)
    assert "41.7% is worse than guessing (50% with 2 classes)" in said and "transfer model" in said
    assert "only 12 validation pictures" in said and "Add pictures" in said
    overfit = _two_class(35, 35, 50, train_accuracy=1.0)  # 70% on 100 pictures, 100% in training
    assert len(overfit.verdicts()) == 1 and "overfitting" in overfit.verdicts()[0] and "augmentation" in overfit.verdicts()[0]
    assert _two_class(48, 47, 50, train_accuracy=0.99).verdicts() == []  # healthy: nothing to say
    assert _two_class(48, 47, 50).weights_note() == ""


def test_a_stopped_or_diverged_run_says_whose_weights_these_are():
    stopped = _two_class(26, 25, 50, state="stopped")  # low because it stopped early: no chance verdict
    assert "weights it had when it stopped" in stopped.weights_note() and stopped.verdicts() == []
    assert "last good weights" in _two_class(30, 30, 50, state="diverged").weights_note()
    assert "last good weights" in _two_class(30, 30, 50, state="diverged").to_json()["note"]


def test_the_confusion_chart_has_counts_on_a_greyscale_readable_scale_for_twenty_classes():
    classes = [f"class number {i}" for i in range(20)]
    counts = np.diag(np.full(20, 9)) + 1
    fig = charts.confusion_figure(classes, counts)
    heat = fig.data[0]
    assert np.asarray(heat.text).tolist() == counts.tolist() and heat.texttemplate == "%{text}"
    assert np.asarray(heat.z).max() <= 1 and heat.zmin == 0 and heat.zmax == 1  # share of the true class
    # light to dark, the luminance falling steadily: the order of the cells survives a greyscale print
    rgb = [[int(v) for v in re.findall(r"\d+", c)] for _, c in heat.colorscale]
    luminance = [0.299 * r + 0.587 * g + 0.114 * b for r, g, b in rgb]
    assert len(luminance) > 2 and all(a > b for a, b in zip(luminance, luminance[1:]))
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.xaxis.title.text == "predicted class"
    assert all(len(label) <= 14 for label in heat.x) and fig.layout.height <= 760


def test_the_accuracy_chart_has_a_chance_line_when_told_the_classes():
    fig = charts.accuracy_figure([], 5, num_classes=4)
    assert [s.y0 for s in fig.layout.shapes] == [0.25]
    assert any("chance: 25%" in a.text for a in fig.layout.annotations)
    assert not charts.accuracy_figure([], 5).layout.shapes


# -- kept with the run, and made by the job --------------------------------------------------------
LOOK = ImageLook(4, 4, 1)


def tiny_dataset(per_class: int = 6) -> Dataset:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), per_class)
    return Dataset("tiny", rng.integers(0, 255, (len(y), 4, 4, 1), dtype=np.uint8), y, ("cats", "dogs"), LOOK)


def tiny_model():
    import keras

    return keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])


class OneCatalog:
    def __init__(self, data):
        self.data = data

    def load(self, name, owner=None):
        return self.data

    def check(self, name, owner):
        pass

    def title(self, name, owner=None):
        return name


@pytest.fixture
def saved(tmp_path):
    """A run of alice's saved as a job saves it, with no evaluation yet (as before this change)."""
    store, data = RunStore(tmp_path / "runs"), tiny_dataset()
    hp = validate(validation_split=0.5)
    rows = [{"step": 1, "epoch": 1.0, "loss": 0.7, "accuracy": 0.5, "val_loss": 0.7, "val_accuracy": 0.5}]
    run_id = store.save(owner="alice", hparams=hp, metrics=rows, model=tiny_model(), class_names=data.class_names,
                        look=LOOK, state="done")
    return store, OneCatalog(data), run_id


def test_an_old_run_is_evaluated_once_on_demand_then_read_back(saved):
    store, catalog, run_id = saved
    assert store.evaluation(run_id, "alice") is None
    ev = evaluation.of_run(store, catalog, run_id, "alice")
    folder = store.root / run_id
    assert (folder / EVALUATION).exists() and (folder / MISTAKES).exists()
    assert ev.total == 6 and ev.train_accuracy == 0.5  # half of 12 pictures, validation_split 0.5
    catalog.data = None  # the second time nothing is computed: it is read back
    again = evaluation.of_run(store, catalog, run_id, "alice")
    assert again.confusion.tolist() == ev.confusion.tolist() and again.mistakes == ev.mistakes
    assert (again.images == ev.images).all()


def test_another_students_run_gets_the_answer_a_missing_one_gets(saved):
    store, catalog, run_id = saved
    with pytest.raises(RunNotFound) as theirs:
        evaluation.of_run(store, catalog, run_id, "bob")
    fake = run_id[:-4] + "0000"
    with pytest.raises(RunNotFound) as missing:
        evaluation.of_run(store, catalog, fake, "bob")
    assert str(theirs.value).replace(run_id, "ID") == str(missing.value).replace(fake, "ID")
    assert not (store.root / run_id / EVALUATION).exists()  # nothing was computed for bob


def test_a_damaged_evaluation_is_made_again(saved):
    store, catalog, run_id = saved
    evaluation.of_run(store, catalog, run_id, "alice")
    (store.root / run_id / EVALUATION).write_text("{not json")
    assert store.evaluation(run_id, "alice") is None
    assert evaluation.of_run(store, catalog, run_id, "alice").total == 6


def test_a_job_saves_its_evaluation_and_its_verdicts_reach_the_status(tmp_path):
    from lab.jobs import JobManager
    from lab.training import FitResult

    from components.train_tab import status_markdown

    class Runtime:
        replicas = 1

        def summary(self):
            return "1 × test"

    def train(hp, runtime, log, data=None):
        log.rows.append({"step": 1, "epoch": 1.0, "loss": 0.7, "accuracy": 0.5, "val_loss": 0.7, "val_accuracy": 0.5})
        return FitResult(tiny_model(), stopped=False, diverged=False, class_names=data.class_names)

    store = RunStore(tmp_path / "runs")
    jobs = JobManager(store, Runtime, train=train, catalog=OneCatalog(tiny_dataset()))
    job = jobs.wait(jobs.submit("alice", validate(validation_split=0.5)).job_id, 60)
    assert job.state == "done" and (store.root / job.run_id / EVALUATION).exists()
    ev = store.evaluation(job.run_id, "alice")
    assert ev.total == 6 and ev.state == "done"
    assert "only 6 validation pictures" in job.message  # an untrained model on twelve pictures
    line = status_markdown(jobs.view(job.job_id, "alice"))
    first, verdicts = line.split("\n\n", 1)
    assert first.startswith("⚠️ **Done**: saved") and first.endswith("Validation accuracy **50.0%**.")
    assert verdicts.startswith("⚠️ It was measured on only 6 validation pictures")


@pytest.mark.slow
def test_a_finished_jobs_accuracy_is_its_final_validation_accuracy(runtime, tmp_path):
    """A real job on the digits: evaluated in the job, on Keras' own validation split and weights."""
    from lab import datasets
    from lab.jobs import JobManager

    store = RunStore(tmp_path / "runs")
    jobs = JobManager(store, lambda: runtime)
    hp = validate(model="small_cnn", epochs=2, batch_size=64)  # 360 validation pictures: the last batch is padded
    job = jobs.wait(jobs.submit("alice", hp).job_id, 300)
    assert job.state == "done", job.message
    ev = store.evaluation(job.run_id, "alice")
    assert ev.accuracy == pytest.approx(job.log.rows[-1]["val_accuracy"], abs=1e-6)
    data = datasets.load("digits")
    _, val = datasets.split(data, hp.validation_split, hp.seed)
    assert ev.total == len(val) and ev.confusion.sum(axis=1).tolist() == np.bincount(data.y[val]).tolist()
    assert all((ev.images[i] == data.x[m.index]).all() and data.y[m.index] == m.true for i, m in enumerate(ev.mistakes))
    # the saved model, loaded as the Try tab loads it, gives the same figures (the on-demand path)
    again = evaluation.evaluate_loaded(store.load(job.run_id), data, store.metrics(job.run_id))
    assert again.confusion.tolist() == ev.confusion.tolist()
