"""Runs go to persistent storage on a Space that has it, else local disk, with a note; the stores'
shared helpers (an atomic folder write, a thread-safe LRU) do what they say."""

import threading
from pathlib import Path

import pytest

from lab.storage import LRU, TMP_PREFIX, atomic_folder, choose_runs_dir


def test_an_explicit_runs_dir_always_wins(tmp_path):
    assert choose_runs_dir("somewhere", {"SPACE_ID": "a/b"}, tmp_path) == (Path("somewhere"), "")


def test_persistent_storage_is_used_when_present(tmp_path):
    path, note = choose_runs_dir(None, {"SPACE_ID": "teacher/vision-lab"}, tmp_path)
    assert path == tmp_path / "vision-lab" / "runs" and note == ""


def test_a_space_without_storage_warns_that_runs_are_lost(tmp_path):
    path, note = choose_runs_dir(None, {"SPACE_ID": "teacher/vision-lab"}, tmp_path / "missing")
    assert path == Path("runs") and "lost when it restarts" in note


def test_a_laptop_uses_local_runs_quietly(tmp_path):
    assert choose_runs_dir(None, {}, tmp_path / "missing") == (Path("runs"), "")


# --- the helpers the stores share -----------------------------------------------------------


def test_the_lru_forgets_the_least_recently_used_first():
    cache = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2
    assert cache.get("b", "gone") == "gone"
    assert cache.pop("a") == 1 and cache.pop("a") is None and len(cache) == 1
    cache.put("x@1", 0)
    assert cache.discard_where(lambda k: k.endswith("@1")) == 1 and "x@1" not in cache
    cache.clear()
    assert len(cache) == 0


def test_the_lru_stays_bounded_under_threads():
    cache = LRU(5)

    def work(t):
        for i in range(500):
            cache.put((t, i), i)
            cache.get((t, i - 1))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 5


def test_an_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    with atomic_folder(tmp_path / "run1") as tmp:
        assert tmp.name == TMP_PREFIX + "run1" and tmp.is_dir()
        (tmp / "model.keras").write_text("weights")
        assert not (tmp_path / "run1").exists()  # nothing under the final name while writing
    assert (tmp_path / "run1" / "model.keras").read_text() == "weights"
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "run2") as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1"]
