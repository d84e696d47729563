"""lab.captures.CaptureStore: webcam frames recorded into a student's classes, then saved to train on."""

from __future__ import annotations

import numpy as np
import pytest

from lab.captures import FRAME_LOOK, MIN_FRAMES_TO_TRAIN, CaptureError, CaptureStore, frame_to_uint8
from lab.datasets import DatasetError
from lab.images import ImageError, prepare, read_image
from lab.user_datasets import UserDatasets


class Clock:
    """A fake monotonic clock: each frame a test sends is `step` seconds after the last."""

    def __init__(self, step: float = 1.0):
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        return self.t

    def tick(self, dt: float | None = None) -> None:
        self.t += self.step if dt is None else dt


def webcam_frame(value: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A 'webcam' frame (H x W RGB) whose pixels all show one grey level."""
    return np.full((h, w, 3), value, np.uint8)


def record(store: CaptureStore, clock: Clock, client: str, name: str, n: int, value: int = 100) -> int:
    store.start(client, name)
    kept = 0
    for i in range(n):
        clock.tick()
        kept += store.add_frame(client, webcam_frame((value + i) % 256))
    store.stop(client)
    return kept


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(clock):
    return CaptureStore(clock=clock)


def test_frames_are_kept_only_while_recording(store, clock):
    store.add_class("amy", "up")
    clock.tick()
    assert store.add_frame("amy", webcam_frame(10)) is False  # added but not started
    store.start("amy", "up")
    assert store.recording("amy") == "up"
    for v in (20, 30, 40):
        clock.tick()
        assert store.add_frame("amy", webcam_frame(v)) is True
    assert store.stop("amy") == ("up", 3, False)
    clock.tick()
    assert store.add_frame("amy", webcam_frame(50)) is False
    assert store.counts("amy") == {"up": 3}
    assert [int(f[0, 0, 0]) for _, f in store.frames("amy", "up")] == [20, 30, 40]


def test_frames_match_the_try_tabs_preprocessing(store, clock):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    store.add_class("amy", "up")
    store.start("amy", "up")
    clock.tick()
    assert store.add_frame("amy", frame)
    (_, kept), = store.frames("amy", "up")
    assert kept.dtype == np.uint8 and kept.shape == FRAME_LOOK.shape() == (96, 96, 3)
    # what inference.predict feeds a model trained with FRAME_LOOK, back in 0..255
    expected = prepare(read_image(frame), FRAME_LOOK) * 255.0
    np.testing.assert_allclose(kept, expected, atol=0.5)


def test_a_fast_stream_is_rate_limited(clock):
    store = CaptureStore(clock=clock, min_interval=0.1)
    store.add_class("amy", "up")
    store.start("amy", "up")
    kept = 0
    for _ in range(100):  # 100 frames in one second
        clock.tick(0.01)
        kept += store.add_frame("amy", webcam_frame(1))
    assert 9 <= kept <= 11, kept


def test_students_never_see_each_others_captures(store, clock):
    store.add_class("amy", "up")
    store.add_class("bob", "up")  # the same name is fine for another student
    store.add_class("bob", "down")
    record(store, clock, "amy", "up", 3)
    store.start("bob", "down")
    clock.tick()
    assert store.add_frame("amy", webcam_frame(1)) is False  # bob recording does not record amy
    assert store.counts("amy") == {"up": 3}
    assert store.counts("bob") == {"up": 0, "down": 0}
    assert store.classes("carl") == [] and store.counts("carl") == {}
    with pytest.raises(CaptureError, match="no classes"):
        store.start("carl", "up")


def test_class_names_are_checked(store):
    assert store.add_class("amy", "  thumbs   up ") == "thumbs up"
    for bad, message in [("", "Type a name"), ("   ", "Type a name"), ("Thumbs Up", "already have")]:
        with pytest.raises(CaptureError, match=message):
            store.add_class("amy", bad)
    assert len(store.add_class("amy", "x" * 100)) == 30
    with pytest.raises(CaptureError, match="no class “nope”"):
        store.start("amy", "nope")
    assert store.classes("amy") == ["thumbs up", "x" * 30]


def test_limits_on_classes_and_frames(clock):
    store = CaptureStore(clock=clock, max_classes=3, max_frames=4)
    for name in "abc":
        store.add_class("amy", name)
    with pytest.raises(CaptureError, match="3 classes is the most"):
        store.add_class("amy", "d")
    assert record(store, clock, "amy", "a", 10) == 4  # a full class stops the recording
    store.start("amy", "b")
    clock.tick()
    store.add_frame("amy", webcam_frame(1))
    assert store.stop("amy") == ("b", 1, False)
    with pytest.raises(CaptureError, match="full"):
        store.start("amy", "a")
    assert store.counts("amy") == {"a": 4, "b": 1, "c": 0}


def test_a_full_class_says_so_when_recording_stops(clock):
    store = CaptureStore(clock=clock, max_frames=2)
    store.add_class("amy", "a")
    store.start("amy", "a")
    for _ in range(3):
        clock.tick()
        store.add_frame("amy", webcam_frame(1))
    assert store.recording("amy") is None
    assert store.stop("amy") == (None, 2, True)


def test_delete_clear_and_remove(store, clock):
    store.add_class("amy", "up")
    store.add_class("amy", "down")
    record(store, clock, "amy", "up", 5, value=10)
    ids = [i for i, _ in store.frames("amy", "up")]
    assert store.delete_frames("amy", "up", [ids[1], ids[3], 999]) == 2
    assert [int(f[0, 0, 0]) for _, f in store.frames("amy", "up")] == [10, 12, 14]
    assert [i for i, _ in store.frames("amy", "up", newest=2)] == [ids[2], ids[4]]
    record(store, clock, "amy", "up", 2, value=50)
    new_ids = [i for i, _ in store.frames("amy", "up")][-2:]
    assert not set(new_ids) & set(ids), "a deleted frame's id must never name a new frame"
    assert store.clear_class("amy", "up") == 5
    assert store.counts("amy") == {"up": 0, "down": 0}
    store.start("amy", "down")
    store.remove_class("amy", "down")  # removing the class being recorded stops the recording
    assert store.recording("amy") is None and store.classes("amy") == ["up"]
    with pytest.raises(CaptureError):
        store.delete_frames("amy", "down", [0])


def test_unreadable_frames_are_refused(store, clock):
    store.add_class("amy", "up")
    store.start("amy", "up")
    clock.tick()
    with pytest.raises(ImageError):
        store.add_frame("amy", np.zeros((5, 5, 7)))
    assert store.counts("amy") == {"up": 0}


def test_to_dataset_refuses_too_little(store, clock, tmp_path):
    datasets = UserDatasets(tmp_path)
    with pytest.raises(CaptureError, match="at least two classes"):
        store.to_dataset(datasets, "amy")
    store.add_class("amy", "up")
    record(store, clock, "amy", "up", MIN_FRAMES_TO_TRAIN)
    with pytest.raises(CaptureError, match="at least two classes"):
        store.to_dataset(datasets, "amy")
    store.add_class("amy", "down")
    record(store, clock, "amy", "down", MIN_FRAMES_TO_TRAIN - 1)
    with pytest.raises(CaptureError, match=r"too few in: “down” \(4\)"):
        store.to_dataset(datasets, "amy")
    assert datasets.list("amy") == []


def test_to_dataset_saves_a_dataset_to_train_on(store, clock, tmp_path):
    datasets = UserDatasets(tmp_path)
    store.add_class("amy", "up")
    store.add_class("amy", "down")
    record(store, clock, "amy", "up", 6, value=10)
    record(store, clock, "amy", "down", 7, value=200)
    store.add_class("bob", "other")  # another student's captures stay out of it

    info = store.to_dataset(datasets, "amy", "My hands")
    assert info.dataset_id.startswith("my-hands@") and info.source == "webcam"
    assert info.class_names == ("up", "down") and info.counts == {"up": 6, "down": 7}
    data = datasets.load(info.dataset_id, "amy")
    assert data.look == FRAME_LOOK and data.x.shape == (13, 96, 96, 3)
    for label, frames in enumerate(["up", "down"]):
        expected = np.stack([f for _, f in store.frames("amy", frames)])
        np.testing.assert_array_equal(data.x[data.y == label], expected)
    with pytest.raises(DatasetError):
        datasets.load(info.dataset_id, "bob")


def test_least_recently_active_students_are_forgotten(clock):
    store = CaptureStore(clock=clock, max_clients=2)
    store.add_class("amy", "a")
    store.add_class("bob", "b")
    store.counts("amy")  # amy is active again: bob is now the oldest
    store.add_class("carl", "c")
    assert store.classes("bob") == []
    assert store.classes("amy") == ["a"] and store.classes("carl") == ["c"]


def test_the_frame_budget_forgets_others_not_the_recorder(clock):
    store = CaptureStore(clock=clock, max_total_frames=12)
    for who in ("amy", "bob"):
        store.add_class(who, "a")
        record(store, clock, who, "a", 5)
    store.add_class("carl", "a")
    assert record(store, clock, "carl", "a", 6) == 6
    # carl's third frame makes 13, over the budget: amy, the least recently active, goes (not
    # bob too: 11 fits); carl keeps recording
    assert store.counts("amy") == {} and store.counts("bob") == {"a": 5} and store.counts("carl") == {"a": 6}


def test_frame_to_uint8_refuses_non_images():
    with pytest.raises(ImageError):
        frame_to_uint8(b"not an image")


def test_picture_files_can_fill_a_class_without_a_webcam(store, tmp_path):
    from tests.zips import BLUE, RED, picture

    store.add_class("amy", "red")
    store.add_class("amy", "blue")
    reds = []
    for i in range(6):
        reds.append(tmp_path / f"r{i}.png")
        reds[-1].write_bytes(picture(RED, seed=i))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    added, skipped, why = store.add_pictures("amy", "red", [*reds, broken])
    assert (added, skipped) == (6, 1) and "not an image" in why
    added, skipped, _ = store.add_pictures("amy", "blue", [picture(BLUE, seed=i) for i in range(5)])
    assert (added, skipped) == (5, 0) and store.counts("amy") == {"red": 6, "blue": 5}
    assert store.recording("amy") is None  # files never start a recording
    red = store.frames("amy", "red")[0][1]
    assert red.shape == (96, 96, 3) and red[..., 0].mean() > 150 and red[..., 2].mean() < 80


def test_picture_files_stop_at_a_full_class(clock, tmp_path):
    from tests.zips import RED, picture

    store = CaptureStore(max_frames=3, clock=clock)
    store.add_class("amy", "red")
    added, skipped, why = store.add_pictures("amy", "red", [picture(RED, seed=i) for i in range(5)])
    assert (added, skipped) == (3, 2) and "full" in why and store.counts("amy") == {"red": 3}
    with pytest.raises(CaptureError, match="no class"):
        store.add_pictures("amy", "green", [picture(RED)])
