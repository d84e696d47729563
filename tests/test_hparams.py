"""HParams: one declaration, validated on the server, round-tripped through dicts and URLs."""

import pytest

from lab.hparams import FIELDS, HParams, HParamsError, validate


def test_missing_keys_take_defaults():
    hp = validate({"model": "small_cnn"})
    assert hp.model == "small_cnn"
    assert hp.batch_size == HParams().batch_size and hp.dataset == "digits"


@pytest.mark.parametrize(
    "raw, field, words",
    [
        ({"batch_size": 3.7}, "batch_size", "whole number"),
        ({"batch_size": 10**9}, "batch_size", "between 1 and 1024"),
        ({"batch_size": 0}, "batch_size", "between"),
        ({"learning_rate": -1}, "learning_rate", "between"),
        ({"learning_rate": float("nan")}, "learning_rate", "finite"),
        ({"learning_rate": "fast"}, "learning_rate", "number"),
        ({"model": "resnet9000"}, "model", "must be one of"),
        ({"dataset": "../../etc"}, "dataset", "must be one of"),
        ({"epochs": True}, "epochs", "number"),
        ({"augment_flip": "maybe"}, "augment_flip", "true or false"),
        ({"validation_split": 0.99}, "validation_split", "between"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(raw, field, words):
    with pytest.raises(HParamsError) as e:
        validate(raw)
    assert field in str(e.value) and words in str(e.value)


def test_every_problem_is_reported_at_once_and_unknown_keys_are_named():
    with pytest.raises(HParamsError) as e:
        validate({"batch_size": -5, "epochs": 0, "colour": "red"})
    assert len(e.value.problems) == 3
    assert "colour" in str(e.value)


def test_strings_from_a_url_are_coerced():
    hp = validate({"batch_size": "64", "learning_rate": "0.01", "augment_flip": "true"})
    assert (hp.batch_size, hp.learning_rate, hp.augment_flip) == (64, 0.01, True)


def test_query_round_trip_keeps_the_whole_experiment():
    hp = validate(model="small_cnn", learning_rate=0.0005, batch_size=16, augment_zoom=0.2, augment_flip=True)
    assert HParams.from_query(hp.to_query()) == hp
    assert HParams.from_query("?" + hp.to_query()) == hp


def test_defaults_are_themselves_valid_and_fields_match_the_dataclass():
    assert validate({}) == HParams()
    for f in FIELDS:
        if f.low is not None:
            assert f.low <= f.default <= f.high, f.name


def test_fields_are_read_off_the_one_declaration():
    """HParams declares each setting once; FIELDS follows it, in order, with its types and defaults."""
    import dataclasses

    declared = dataclasses.fields(HParams)
    assert [f.name for f in FIELDS] == [f.name for f in declared]
    for f in FIELDS:
        assert type(f.default) is f.kind and getattr(HParams(), f.name) == f.default, f.name
        assert f.kind in (str, int, float, bool) and f.label and f.help, f.name
    hp = HParams(model="small_cnn", epochs=3)  # keyword construction and attribute access as before
    assert (hp.model, hp.epochs, hp.total_epochs) == ("small_cnn", 3, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hp.epochs = 4
    from lab.optimizers import OPTIMIZERS

    assert FIELDS[[f.name for f in FIELDS].index("optimizer")].choices() == list(OPTIMIZERS)
