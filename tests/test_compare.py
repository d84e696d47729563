"""Comparing runs (lab.compare, issue 13): names, the knobs that differ, the board's rows; the overlay
chart; what RunStore keeps for the board. Fast: no training."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

import pytest

from lab import charts, compare
from lab.hparams import HParams, validate
from lab.images import ImageLook
from lab.runs import RunStore

NOON = time.mktime((2026, 3, 4, 12, 0, 0, 0, 0, -1))


@dataclass(frozen=True)
class Run:  # what lab.compare reads of a lab.runs.RunInfo
    run_id: str
    hparams: HParams
    val_accuracy: float | None = 0.961
    state: str = "done"
    created: float = NOON
    dataset_title: str = ""
    best_val_accuracy: float | None = None
    train_seconds: float | None = None
    images_per_second: float | None = None


def run(run_id="a", created=NOON, **knobs) -> Run:
    return Run(run_id, validate(knobs), created=created)


def test_a_name_says_model_learning_rate_and_accuracy():
    assert compare.run_name(run(model="small_cnn", learning_rate=0.03)) == "small_cnn · lr 0.03 · 96.1%"
    assert compare.run_name(run(learning_rate=0.00001)) == "mlp · lr 0.00001 · 96.1%"  # never 1e-05


def test_a_name_lists_the_knobs_set_away_from_their_defaults_and_no_more_than_a_few():
    assert compare.run_name(run(epochs=5, augment_flip=True)) == "mlp · lr 0.003 · epochs 5 · flip · 96.1%"
    many = compare.run_name(run(epochs=5, batch_size=64, seed=1, augment_rotation=0.1))
    assert many == "mlp · lr 0.003 · batch 64 · epochs 5 · +2 more · 96.1%", many


def test_a_name_says_the_dataset_by_the_students_name_for_it_never_its_id():
    own = Run("a", validate(dataset="my-webcam@0123456789"), dataset_title="my webcam", state="stopped",
              val_accuracy=0.81)
    assert compare.run_name(own) == "mlp on my webcam · lr 0.003 · 81.0% · stopped"
    assert compare.run_name(run(dataset="fashion_mnist")).startswith("mlp on fashion_mnist · ")


def test_a_run_never_measured_says_so():
    never = Run("a", validate(), val_accuracy=None, state="stopped")
    assert compare.run_name(never) == "mlp · lr 0.003 · stopped before it was measured"


def test_runs_that_would_share_a_name_also_say_when():
    a, b = run("a", NOON), run("b", NOON + 75)
    names = compare.unique_names([b, a, run("c", NOON, epochs=3)])
    assert names["a"].endswith(" · 12:00:00") and names["b"].endswith(" · 12:01:15")
    assert names["c"] == "mlp · lr 0.003 · epochs 3 · 96.1%"


def test_changes_name_each_knob_that_differs_from_the_previous_run_in_full():
    old, new = run("a", learning_rate=0.003), run("b", learning_rate=0.03)
    assert compare.changes(new, old) == ["learning_rate 0.003 → 0.03"]
    assert compare.changes(run("c", model="small_cnn", augment_flip=True), old) == \
        ["model mlp → small_cnn", "augment_flip off → on"]
    assert compare.changes(new, None) == []
    assert compare.changes(run("d", learning_rate=0.003), old) == []


def test_a_change_of_dataset_is_named_by_the_students_names():
    mine = Run("b", validate(dataset="pets@0123456789"), dataset_title="my pets")
    assert compare.changes(mine, run("a")) == ["dataset digits → my pets"]


def test_the_legend_names_what_differs_among_the_compared_runs():
    runs = [run("a", learning_rate=0.003), run("b", learning_rate=0.03)]
    assert compare.legend_names(runs) == {"a": "lr 0.003", "b": "lr 0.03"}
    two = compare.legend_names([run("a"), run("b", learning_rate=0.03, epochs=5)])
    assert two == {"a": "lr 0.003, epochs 15", "b": "lr 0.03, epochs 5"}


def test_runs_with_the_same_knobs_are_told_apart_by_their_time_on_a_legend():
    legends = compare.legend_names([run("a", NOON), run("b", NOON + 30), run("c", NOON, learning_rate=0.1)])
    assert legends["a"] == "lr 0.003 (12:00:00)" and legends["b"] == "lr 0.003 (12:00:30)"
    assert legends["c"] == "lr 0.1"
    assert compare.legend_names([run("a", NOON), run("b", NOON + 30)]) == {"a": "run at 12:00:00", "b": "run at 12:00:30"}
    assert compare.legend_names([run("a", learning_rate=0.03)]) == {"a": "mlp · lr 0.03 · 96.1%"}  # alone: in full


def test_board_rows_compare_each_run_with_the_one_before_and_show_dashes_for_old_runs():
    old = run("a", NOON - 86400 * 3, learning_rate=0.003)
    new = replace(run("b", NOON, learning_rate=0.03), best_val_accuracy=0.97, train_seconds=75.4, images_per_second=5321.7)
    rows = compare.board_rows([new, old], now=NOON + 60)
    assert [r.run_id for r in rows] == ["b", "a"]
    assert rows[0].changed == "learning_rate 0.003 → 0.03" and rows[1].changed == "first run"
    assert (rows[0].best_val_accuracy, rows[0].train_time, rows[0].images_per_second) == ("97.0%", "1 min 15 s", "5,322")
    assert (rows[1].best_val_accuracy, rows[1].train_time, rows[1].images_per_second) == ("—", "—", "—")
    assert rows[0].when == "12:00" and rows[1].when == "1 Mar 12:00"
    assert rows[0].name == "mlp · lr 0.03 · 96.1%" and rows[0].model == "mlp" and rows[0].dataset == "digits"
    same = compare.board_rows([run("c", NOON + 5), run("d", NOON)])
    assert same[0].changed == "same settings"


def test_durations_read_as_a_student_would_say_them():
    assert [compare.duration_text(s) for s in (8.43, 59.9, 125, 3725, None)] == \
        ["8.4 s", "59.9 s", "2 min 05 s", "1 h 02 min", "—"]


ROWS_A = [{"step": 5, "epoch": 0.5, "loss": 2.0, "accuracy": 0.3},
          {"step": 10, "epoch": 1.0, "loss": 1.5, "accuracy": 0.5, "val_loss": 1.6, "val_accuracy": 0.45}]
ROWS_B = ROWS_A + [{"step": 15, "epoch": 1.5, "loss": 1.0, "accuracy": 0.7},
                   {"step": 20, "epoch": 2.0, "loss": 0.8, "accuracy": 0.8, "val_loss": 0.9, "val_accuracy": 0.75}]


def test_the_overlay_has_one_trace_pair_and_one_colour_per_run_training_solid_validation_dotted():
    loss, acc = charts.compare_figures([("lr 0.003", ROWS_A), ("lr 0.03", ROWS_B)])
    for fig in (loss, acc):
        assert len(fig.data) == 4
        groups = [t.legendgroup for t in fig.data]
        assert groups[0] == groups[1] != groups[2] == groups[3]
        assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
        assert [t.line.dash for t in fig.data] == [None, "dot", None, "dot"]
        assert [t.name for t in fig.data if t.showlegend is not False] == ["lr 0.003", "lr 0.03"]
        assert list(fig.layout.xaxis.range) == [0, 2.0]  # the longest run
    assert list(acc.data[3].y) == [0.45, 0.75] and list(loss.data[2].y) == [2.0, 1.5, 1.0, 0.8]


def test_the_overlay_escapes_markup_in_names_and_hints_when_empty():
    fig = charts.overlay_figure([("<b>mine</b>", ROWS_A)], "loss", "Loss", percent=False)
    assert fig.data[0].name == "&lt;b&gt;mine&lt;/b&gt;"
    empty = charts.overlay_figure([], "loss", "Loss", percent=False)
    assert not empty.data and "two or more" in empty.layout.annotations[0].text


class TinyModel:
    def save(self, path):
        open(path, "wb").close()


def test_a_run_keeps_its_time_speed_and_best_accuracy_and_old_runs_read_without_them(tmp_path):
    store = RunStore(tmp_path)
    rows = [{"step": 1, "epoch": 1, "loss": 1, "accuracy": 0.5, "val_loss": 1, "val_accuracy": 0.9},
            {"step": 2, "epoch": 2, "loss": 0.5, "accuracy": 0.6, "val_loss": 2, "val_accuracy": 0.8}]
    saved = dict(owner="alice", hparams=validate(learning_rate=0.03), metrics=rows, model=TinyModel(),
                 class_names=("a", "b"), look=ImageLook(8, 8, 1), state="done")
    run_id = store.save(**saved, train_seconds=12.5, images_per_second=4000.0)
    info = store.info(run_id, "alice")
    assert (info.train_seconds, info.images_per_second, info.best_val_accuracy, info.val_accuracy) == (12.5, 4000.0, 0.9, 0.8)
    assert info.title() == "mlp · lr 0.03 · 80.0%"

    old_id = store.save(**saved)  # a run saved before the board: its meta.json has none of the three
    meta_path = tmp_path / old_id / "meta.json"
    meta = json.loads(meta_path.read_text())
    for key in ("train_seconds", "images_per_second", "best_val_accuracy"):
        meta.pop(key)
    meta_path.write_text(json.dumps(meta))
    old = store.info(old_id, "alice")
    assert (old.train_seconds, old.images_per_second) == (None, None)
    assert old.best_val_accuracy == pytest.approx(0.9)  # read from its metrics
    row = compare.board_rows([old])[0]
    assert (row.train_time, row.images_per_second) == ("—", "—")
    assert compare.run_json(info)["train_seconds"] == 12.5


def test_the_board_table_has_column_headers_and_students_names_as_plain_text():
    pytest.importorskip("gradio")
    from components.runs_board import COLUMNS, EMPTY, table_html

    own = Run("a", validate(dataset="pets@0123456789"), dataset_title='a|b *c* <img src=x onerror="alert(1)">')
    page = table_html(compare.board_rows([own]))
    assert page.count('<th scope="col">') == len(COLUMNS) and page.count("<tr>") == 2
    assert "<img" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert 'tabindex="0" role="region"' in page  # it scrolls sideways on a phone: a keyboard can scroll it too
    assert table_html([]) == EMPTY
