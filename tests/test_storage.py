"""Runs go to persistent storage on a Space that has it, else local disk, with a note."""

from pathlib import Path

from lab.storage import choose_runs_dir


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
