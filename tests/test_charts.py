"""Chart builders are pure: rows in, figure out."""

import math

import numpy as np
import pandas as pd
import pytest

from lab import charts

ROWS = [
    {"step": 4, "epoch": 0.5, "loss": 2.0, "accuracy": 0.3},
    {"step": 8, "epoch": 1.0, "loss": 1.5, "accuracy": 0.5, "val_loss": 1.6, "val_accuracy": 0.45},
    {"step": 12, "epoch": 1.5, "loss": 1.0, "accuracy": 0.7},
    {"step": 16, "epoch": 2.0, "loss": 0.8, "accuracy": 0.8, "val_loss": 0.9, "val_accuracy": 0.75},
]


def test_loss_chart_has_training_and_validation_on_an_epoch_axis():
    fig = charts.loss_figure(ROWS, epochs=10)
    train, val = fig.data
    assert list(train.x) == [0.5, 1.0, 1.5, 2.0] and list(train.y) == [2.0, 1.5, 1.0, 0.8]
    assert list(val.x) == [1.0, 2.0] and list(val.y) == [1.6, 0.9]
    assert list(fig.layout.xaxis.range) == [0, 10]  # the planned epochs, so progress is visible
    assert fig.layout.xaxis.title.text == "epoch"


def test_both_charts_share_the_x_axis_range():
    a = charts.loss_figure(ROWS, epochs=3)
    b = charts.accuracy_figure(ROWS, epochs=3)
    assert list(a.layout.xaxis.range) == list(b.layout.xaxis.range)
    assert list(b.data[1].y) == [0.45, 0.75] and b.layout.yaxis.tickformat == ".0%"


def test_empty_rows_give_an_empty_chart_with_a_hint():
    fig = charts.accuracy_figure([], epochs=5)
    assert all(len(t.x) == 0 for t in fig.data)
    assert "Train" in fig.layout.annotations[0].text


def test_running_past_the_planned_epochs_widens_the_axis():
    fig = charts.loss_figure(ROWS, epochs=1)
    assert math.isclose(fig.layout.xaxis.range[1], 2.0)


def test_class_counts_chart():
    fig = charts.class_counts_figure({"cat": 3, "dog": 5})
    assert list(fig.data[0].x) == ["cat", "dog"] and list(fig.data[0].y) == [3, 5]


def _plain(value):
    """Plotly JSON with its typed arrays ({"dtype", "bdata"}) decoded to lists, for comparing."""
    import base64

    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"}:
            return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("n, fine_tune_from, num_classes", [(0, None, 10), (7, None, 10), (40, 3, 3), (12, None, None)])
def test_the_live_charts_json_is_the_full_builders_figure(n, fine_tune_from, num_classes):
    import json

    rows = [{"step": i, "epoch": i / 4, "loss": 2 / i, "accuracy": 1 - 1 / i,
             **({"val_loss": 3 / i, "val_accuracy": 0.5 + i / 100} if i % 4 == 0 else {})} for i in range(1, n + 1)]
    for metric, full in (("loss", charts.loss_figure(rows, 6, fine_tune_from)),
                         ("accuracy", charts.accuracy_figure(rows, 6, fine_tune_from, num_classes))):
        live = json.loads(charts.live_json(rows, metric, 6, fine_tune_from, num_classes))
        assert _plain(live) == _plain(json.loads(full.to_json())), (metric, n)
        # a saved run's rows come back from metrics.csv as a table, NaN where a row has no validation
        table = pd.DataFrame(rows)
        assert json.loads(charts.live_json(table, metric, 6, fine_tune_from, num_classes)) == live, (metric, n)
    last = n / 4 + 1.5  # a point past the planned epochs (and past every row): the axis follows it
    longer = rows + [{"step": 999, "epoch": last, "loss": 0.1, "accuracy": 0.9}]
    assert json.loads(charts.live_json(longer, "loss", 6))["layout"]["xaxis"]["range"] == [0, max(6, last)]
