"""Students' own datasets: saved privately, loaded by id, trained on through the JobManager's catalog."""

import numpy as np
import pytest

from lab import user_datasets
from lab.archive import ArchiveError
from lab.datasets import DatasetError
from lab.hparams import HParamsError, validate
from lab.images import ImageLook
from lab.jobs import JobError, JobManager
from lab.user_datasets import Catalog, UserDatasets, is_dataset_id, slug
from tests.zips import make_zip, pets_zip

LOOK = ImageLook(12, 12, 3)


def arrays(per_class=(6, 5)):
    y = np.concatenate([np.full(n, c) for c, n in enumerate(per_class)])
    x = np.zeros((len(y), *LOOK.shape()), np.uint8)
    x[..., 0] = (y * 200)[:, None, None]  # class 1 is red, class 0 black
    return x, y


def test_a_saved_dataset_loads_back_by_its_id_for_its_owner_only(tmp_path):
    store = UserDatasets(tmp_path)
    x, y = arrays()
    info = store.add("alice", "My Pets!", x, y, ("cats", "dogs"), LOOK, source="webcam")
    assert is_dataset_id(info.dataset_id) and info.dataset_id.startswith("my-pets@")
    assert info.counts == {"cats": 6, "dogs": 5}
    data = store.load(info.dataset_id, "alice")
    assert np.array_equal(data.x, x) and np.array_equal(data.y, y) and data.look == LOOK
    assert data.class_names == ("cats", "dogs") and not data.x.flags.writeable
    # Bob can neither list nor load it, and the message does not reveal that it exists.
    assert store.list("bob") == []
    with pytest.raises(DatasetError, match="No dataset") as e:
        store.load(info.dataset_id, "bob")
    assert "alice" not in str(e.value)
    # A second store on the same folder (the app restarted) finds it again.
    assert [i.dataset_id for i in UserDatasets(tmp_path).list("alice")] == [info.dataset_id]


@pytest.mark.parametrize("bad", ["../etc", "x@../../aaaaa", "pets@ABCDEF0123", "", None, 5, "pets@0123456789/.."])
def test_ids_from_outside_never_name_a_path(tmp_path, bad):
    with pytest.raises(DatasetError):
        UserDatasets(tmp_path).load(bad)


def test_refuses_datasets_that_cannot_train(tmp_path):
    store = UserDatasets(tmp_path)
    x, y = arrays()
    with pytest.raises(DatasetError, match="at least 2 classes"):
        store.add("a", "one", x[:6], y[:6], ("cats",), LOOK, source="webcam")
    with pytest.raises(DatasetError, match="none in: birds"):
        store.add("a", "three", x, y, ("cats", "dogs", "birds"), LOOK, source="webcam")
    with pytest.raises(DatasetError, match="uint8"):
        store.add("a", "floats", x.astype(np.float32), y, ("cats", "dogs"), LOOK, source="webcam")
    assert store.list("a") == [] and not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())


def test_old_datasets_beyond_the_limit_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(user_datasets, "MAX_DATASETS_PER_OWNER", 2)
    store = UserDatasets(tmp_path)
    x, y = arrays()
    ids = [store.add("a", f"d{i}", x, y, ("c", "d"), LOOK, source="zip").dataset_id for i in range(3)]
    assert [i.dataset_id for i in store.list("a")] == ids[:0:-1]  # newest first, the oldest gone


def test_a_zip_becomes_a_dataset_with_skips_counted(tmp_path):
    store = UserDatasets(tmp_path / "store")
    z = pets_zip(tmp_path / "pets.zip", extra=[("cats/notes.png", b"not a picture"), ("readme.txt", b"hi")])
    info, imported = store.add_zip("alice", z, "")
    assert info.name == "pets" and info.class_names == ("cats", "dogs") and info.counts == {"cats": 12, "dogs": 11}
    assert info.source == "zip" and sum(imported.skipped.values()) == 2
    data = store.load(info.dataset_id, "alice")
    red = data.x[data.y == 0].mean(axis=(0, 1, 2))
    assert data.x.shape[1:] == (32, 32, 3) and red[0] > 150 and red[2] < 80  # the cats are the red pictures
    assert not (tmp_path / "store" / ".unpack").exists() or not any((tmp_path / "store" / ".unpack").rglob("*.png"))


def test_a_bad_zip_adds_nothing(tmp_path):
    store = UserDatasets(tmp_path / "store")
    one_class = make_zip(tmp_path / "one.zip", [("cats/a.png", b"x")])
    for path in (one_class, tmp_path / "pets.zip"):
        if path.name == "pets.zip":
            path.write_bytes(b"PK\x03\x04 this is not really a zip")
        with pytest.raises(ArchiveError):
            store.add_zip("alice", path, "x")
    assert store.list("alice") == []


def test_hparams_accept_dataset_ids_by_form_only():
    assert validate(dataset="pets@0123456789").dataset == "pets@0123456789"
    for bad in ("pets", "pets@012", "../x@0123456789"):
        with pytest.raises(HParamsError, match="Dataset"):
            validate(dataset=bad)
    assert slug("  Ça va / Dogs ") == "a-va-dogs" and slug("!!!") == "my-images"


def test_the_catalog_describes_every_dataset_without_loading_it(tmp_path, monkeypatch):
    from lab import datasets

    monkeypatch.setattr(datasets, "load", lambda name: pytest.fail("describe must not load anything"))
    store = UserDatasets(tmp_path)
    monkeypatch.setattr(store, "load", lambda *a: pytest.fail("describe must not load anything"))
    x, y = arrays()
    info = store.add("alice", "My Pets", x, y, ("cats", "dogs"), LOOK, source="webcam")
    catalog = Catalog(store)
    own = catalog.describe(info.dataset_id, "alice")
    assert (own.name, own.title, own.look, own.class_names, own.num_classes) == (info.dataset_id, "My Pets", LOOK, ("cats", "dogs"), 2)
    assert not own.builtin and own.source == "webcam" and own.description == ""
    for name, spec in datasets.DATASETS.items():  # a built-in is described from its declaration: no download
        about = catalog.describe(name, "alice")
        assert about.builtin and about.title == name and about.look == spec.look and about.num_classes == spec.num_classes
        assert about.description == spec.description and about.source == ("download" if spec.download_mb else "bundled")
    assert catalog.describe("cifar10").class_names[:2] == ("airplane", "automobile")
    # someone else's, a deleted one, an unknown name: the same refusal a missing one gets
    for name, owner in ((info.dataset_id, "bob"), ("pets@0123456789", "alice"), ("imagenet", "alice"), (None, "alice")):
        with pytest.raises(DatasetError):
            catalog.describe(name, owner)
    with pytest.raises(DatasetError, match="No dataset"):
        Catalog().describe(info.dataset_id, "alice")
    # title: a thin use of describe, never raising
    assert catalog.title(info.dataset_id, "alice") == "My Pets" and catalog.title("digits") == "digits"
    assert catalog.title(info.dataset_id, "bob") == "my-pets" and catalog.title("imagenet") == "imagenet"


@pytest.mark.slow
def test_jobs_refuse_someone_elses_dataset_and_train_on_your_own(tmp_path, runtime):
    from lab import runs as runs_mod

    store = UserDatasets(tmp_path / "ds")
    x, y = arrays((20, 20))
    info = store.add("alice", "colours", x, y, ("black", "red"), LOOK, source="webcam")
    jm = JobManager(runs_mod.RunStore(tmp_path / "runs"), lambda: runtime, catalog=Catalog(store))
    hp = validate(dataset=info.dataset_id, epochs=3, batch_size=8, learning_rate=0.01)
    with pytest.raises(JobError, match="No dataset"):
        jm.submit("bob", hp)
    job = jm.wait(jm.submit("alice", hp).job_id, 120)
    assert job.state == "done", job.message
    saved = jm.runs.info(job.run_id)
    assert saved.class_names == ("black", "red") and saved.look == LOOK and saved.hparams.dataset == info.dataset_id
    assert job.log.rows[-1]["val_accuracy"] == 1.0  # black vs red is easy
