"""Students' work is kept and private, in the engine: owner checks, unguessable ids, the start-up
sweep, the kept BrowserState key, and the bounds on made-up identities (issue 9)."""

from __future__ import annotations

import json

import pytest

from lab.admission import Admission, AdmissionError
from lab.hparams import HParams
from lab.images import ImageLook
from lab.runs import RunNotFound, RunStore, new_run_id
from lab.storage import persistent_secret
from lab.user_datasets import Catalog, UserDatasets


class TinyModel:
    """Stands in for a keras.Model: RunStore only calls save()."""

    def save(self, path):
        path.write_bytes(b"model")


def save_run(store, owner="alice"):
    return store.save(owner=owner, hparams=HParams(), metrics=[{"step": 1, "epoch": 1.0, "loss": 1.0}],
                      model=TinyModel(), class_names=("a", "b"), look=ImageLook(8, 8, 1), state="done")


def test_another_students_run_gets_the_answer_of_a_missing_one(tmp_path):
    store = RunStore(tmp_path)
    run_id = save_run(store, "alice")
    assert store.info(run_id, "alice").owner == "alice"
    with pytest.raises(RunNotFound) as theirs:
        store.info(run_id, "bob")
    missing_id = run_id[:-1] + ("0" if run_id[-1] != "0" else "1")
    with pytest.raises(RunNotFound) as missing:
        store.info(missing_id, "bob")
    assert str(theirs.value).replace(run_id, "ID") == str(missing.value).replace(missing_id, "ID")
    for call in (lambda: store.metrics(run_id, "bob"), lambda: store.load(run_id, "bob"),
                 lambda: store.delete(run_id, "bob")):
        with pytest.raises(RunNotFound):
            call()
    assert store.list("bob") == [] and store.latest("bob") is None
    assert (tmp_path / run_id).is_dir(), "bob's refused delete must not remove alice's run"


def test_a_loaded_run_in_the_cache_is_still_owner_checked(tmp_path):
    """The cache must not become a side door: alice's run, loaded once, stays hers."""
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    store = RunStore(tmp_path)
    run_id = store.save(owner="alice", hparams=HParams(), metrics=[{"step": 1, "epoch": 1.0, "loss": 1.0}],
                        model=model, class_names=("a", "b"), look=ImageLook(8, 8, 1), state="done")
    loaded = store.load(run_id, "alice")  # alice predicts: her run is now in the cache
    assert store.load(run_id, "alice") is loaded
    with pytest.raises(RunNotFound):
        store.load(run_id, "bob")


def test_run_ids_are_unguessable_and_long_ids_never_reach_the_disk(tmp_path):
    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200
    random_part = next(iter(ids)).rsplit("-", 1)[1]
    assert len(random_part) >= 16, "at least 64 random bits"
    store = RunStore(tmp_path / "runs")
    for bad in ("x" * 256, "../" * 80, "." + "a" * 10, "a/b", "", None, 7):
        with pytest.raises(RunNotFound) as e:
            store.info(bad, "alice")
        assert str(tmp_path) not in str(e.value) and len(str(e.value)) < 200


def test_start_up_sweeps_half_written_saves(tmp_path):
    runs, data = tmp_path / "runs", tmp_path / "datasets"
    run_id = save_run(RunStore(runs))
    for root in (runs, data):
        (root / ".tmp-20260101-000000-abc").mkdir(parents=True)
        (root / ".tmp-20260101-000000-abc" / "model.keras").write_bytes(b"half")
    RunStore(runs)
    UserDatasets(data)
    assert not list(runs.glob(".tmp-*")) and not list(data.glob(".tmp-*"))
    assert (runs / run_id / "model.keras").exists(), "finished runs are kept"


def test_the_browser_state_key_is_made_once_and_kept(tmp_path):
    first = persistent_secret(tmp_path)
    assert len(first) >= 32 and persistent_secret(tmp_path) == first
    assert (tmp_path / ".browser-state-key").stat().st_mode & 0o077 == 0, "readable by the owner only"
    assert RunStore(tmp_path).list() == [], "the key file is not taken for a run"
    assert persistent_secret(tmp_path / "other") != first


def test_new_identities_per_address_are_bounded_but_a_class_gets_in():
    now = [0.0]
    gate = Admission(new_per_address=100, window=3600, clock=lambda: now[0])
    for i in range(100):  # a class of 100 behind one school NAT
        gate.admit("10.0.0.1", f"student-{i}")
    with pytest.raises(AdmissionError, match="too many new students"):
        gate.admit("10.0.0.1", "made-up-101")
    gate.admit("10.0.0.1", "student-7")  # a student already in keeps working
    gate.admit("10.0.0.2", "someone-else")  # another address has its own count
    now[0] = 3601.0
    gate.admit("10.0.0.1", "made-up-101")  # the window moved on


def test_admission_remembers_a_bounded_number_of_identities():
    gate = Admission(new_per_address=0, max_known=50)
    for i in range(1000):
        gate.admit("a", f"id-{i}")
    assert len(gate._known) == 50


def test_a_dataset_title_is_the_name_the_student_gave(tmp_path):
    import numpy as np

    users = UserDatasets(tmp_path)
    info = users.add("alice", "my webcam", np.zeros((4, 8, 8, 1), np.uint8), np.array([0, 0, 1, 1]), ("a", "b"),
                     ImageLook(8, 8, 1), source="webcam")
    catalog = Catalog(users)
    assert catalog.title(info.dataset_id, "alice") == "my webcam"
    assert catalog.title("digits", "alice") == "digits"
    meta = json.loads(next(tmp_path.glob("*/meta.json")).read_text())
    assert meta["name"] == "my webcam"


def test_run_titles_name_the_students_dataset_and_say_when_a_run_was_never_measured(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.save(owner="alice", hparams=HParams(dataset="my-webcam@0123456789"), state="stopped",
                        metrics=[{"step": 3, "epoch": 0.3, "loss": 1.0}], model=TinyModel(), class_names=("a", "b"),
                        look=ImageLook(8, 8, 1), dataset_title="my webcam")
    title = store.info(run_id, "alice").title()
    assert " on my webcam " in title and "0123456789" not in title, title
    assert "stopped before it was measured" in title and "n/a" not in title, title
