"""CaptureStore: webcam frames a student records into classes, Teachable-Machine style.

A student names two or more classes, holds a button to record webcam frames into one, looks
at the thumbnails, deletes the bad ones, then saves the lot as one of their own datasets
(lab.user_datasets) to train on. Captures live in memory, keyed by the browser's client id,
so a page reload finds them again; nothing is shared between students.

Every frame goes through `lab.images.read_image` and `prepare` with FRAME_LOOK, the same
reading and preprocessing the Try tab gives a webcam frame for a model trained on these
captures, so a frame seen later predicts like the frames it was trained on.

Part of the engine: no gradio, no keras.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from lab.images import ImageError, ImageLook, prepare, read_image

FRAME_LOOK = ImageLook(96, 96, 3)  # small enough to train quickly on a CPU, big enough to see what it is
MAX_FRAMES_PER_CLASS = 300
MAX_CLASSES = 10
MAX_CLIENTS = 200  # students whose captures are kept; the least recently active are forgotten first
# 20,000 frames of 96x96x3 are about 550 MB: a shared server must not run out of memory, so the
# least recently active students' captures go first when the class together records more.
MAX_TOTAL_FRAMES = 20_000
MIN_FRAMES_TO_TRAIN = 5
MIN_INTERVAL = 0.1  # seconds between kept frames: a fast stream (or an API caller) cannot flood a class
MAX_NAME = 30


class CaptureError(ValueError):
    """A capture request was refused; the message says what to do instead."""


@dataclass
class _Client:
    classes: OrderedDict = field(default_factory=OrderedDict)  # name -> OrderedDict[frame id -> uint8 frame]
    recording: str | None = None
    take: int = 0  # frames kept since the last start()
    full: bool = False  # the last take stopped because the class was full
    next_id: int = 0
    last_frame: float = float("-inf")

    def frame_count(self) -> int:
        return sum(len(f) for f in self.classes.values())


def clean_name(name) -> str:
    """A class name as stored: trimmed, single spaces, at most MAX_NAME characters."""
    return re.sub(r"\s+", " ", str(name or "")).strip()[:MAX_NAME]


def frame_to_uint8(frame, look: ImageLook = FRAME_LOOK) -> np.ndarray:
    """A webcam frame (array, PIL image, path or bytes) -> uint8 array of look.shape().

    Raises:
        lab.images.ImageError: the frame is not a readable image.
    """
    x = prepare(read_image(frame), look)
    return np.rint(x * np.float32(255.0)).astype(np.uint8)


class CaptureStore:
    """Every student's captured classes, in memory; safe to share between threads.

    Args:
        max_frames: frames per class.
        max_classes: classes per student.
        max_clients: students kept; the least recently active are forgotten beyond it.
        max_total_frames: frames kept for the whole class; the least recently active students'
            captures are forgotten beyond it (never the one recording now).
        min_interval: seconds between two kept frames of one student.
        look: how frames are stored (FRAME_LOOK: 96x96 colour).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, max_frames: int = MAX_FRAMES_PER_CLASS, max_classes: int = MAX_CLASSES,
                 max_clients: int = MAX_CLIENTS, max_total_frames: int = MAX_TOTAL_FRAMES,
                 min_interval: float = MIN_INTERVAL, look: ImageLook = FRAME_LOOK, clock=time.monotonic):
        self.max_frames, self.max_classes, self.max_clients = max_frames, max_classes, max_clients
        self.max_total_frames, self.min_interval, self.look = max_total_frames, min_interval, look
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    # -- classes ----------------------------------------------------------
    def add_class(self, client: str, name) -> str:
        """Add an empty class for `client`; returns the name as stored."""
        name = clean_name(name)
        if not name:
            raise CaptureError("Type a name for the class first (for example “thumbs up”).")
        with self._lock:
            c = self._get(client, create=True)
            if any(n.lower() == name.lower() for n in c.classes):
                raise CaptureError(f"You already have a class called “{name}”: pick another name.")
            if len(c.classes) >= self.max_classes:
                raise CaptureError(f"{self.max_classes} classes is the most: remove one before adding another.")
            c.classes[name] = OrderedDict()
        return name

    def remove_class(self, client: str, name: str) -> None:
        """Forget a class and its frames."""
        with self._lock:
            c = self._get(client)
            self._frames_of(c, name)
            if c.recording == name:
                c.recording = None
            del c.classes[name]

    def clear_class(self, client: str, name: str) -> int:
        """Delete every frame of a class (the class stays); returns how many were deleted."""
        with self._lock:
            frames = self._frames_of(self._get(client), name)
            n = len(frames)
            frames.clear()
            return n

    def clear_all(self) -> int:
        """Forget every student's captures (the end of a lesson); returns how many frames went."""
        with self._lock:
            n = sum(c.frame_count() for c in self._clients.values())
            self._clients.clear()
            return n

    def classes(self, client: str) -> list[str]:
        """The student's class names, in the order they were added."""
        with self._lock:
            c = self._get(client, missing_ok=True)
            return list(c.classes) if c else []

    def counts(self, client: str) -> dict[str, int]:
        """Frames per class, in class order."""
        with self._lock:
            c = self._get(client, missing_ok=True)
            return {n: len(f) for n, f in c.classes.items()} if c else {}

    # -- recording --------------------------------------------------------
    def start(self, client: str, name: str) -> None:
        """Start keeping frames for class `name` (until stop(), or the class is full)."""
        with self._lock:
            c = self._get(client)
            frames = self._frames_of(c, name)
            if len(frames) >= self.max_frames:
                raise CaptureError(f"“{name}” is full ({self.max_frames} frames): delete some, "
                                   "or record another class.")
            c.recording, c.take, c.full = name, 0, False

    def stop(self, client: str) -> tuple[str | None, int, bool]:
        """Stop recording; returns (class that was recording, frames kept since start, stopped because full)."""
        with self._lock:
            c = self._get(client, missing_ok=True)
            if c is None:
                return None, 0, False
            was = c.recording
            c.recording = None
            return was, c.take, c.full

    def recording(self, client: str) -> str | None:
        """The class being recorded into, or None."""
        with self._lock:
            c = self._get(client, missing_ok=True)
            return c.recording if c else None

    def add_frame(self, client: str, frame) -> bool:
        """Keep a webcam frame in the class being recorded; returns whether it was kept.

        A frame is dropped (False) when nothing is recording or it came sooner than min_interval
        after the last kept one. A full class stops the recording.

        Raises:
            lab.images.ImageError: the frame is not a readable image.
        """
        with self._lock:
            c = self._get(client, missing_ok=True)
            if c is None or c.recording is None or self._clock() - c.last_frame < self.min_interval:
                return False
        small = frame_to_uint8(frame, self.look)  # outside the lock: it is the slow part
        with self._lock:
            c = self._get(client, missing_ok=True)
            now = self._clock()
            if c is None or c.recording is None or now - c.last_frame < self.min_interval:
                return False  # stopped, or another frame won the race, while this one was prepared
            frames = c.classes[c.recording]
            frames[c.next_id] = small
            c.next_id += 1
            c.take += 1
            c.last_frame = now
            if len(frames) >= self.max_frames:
                c.recording, c.full = None, True
            self._evict(keep=client)
            return True

    def add_pictures(self, client: str, name: str, sources) -> tuple[int, int, str]:
        """Add picture files (uploads: paths, bytes or arrays) to class `name`, as if captured.

        Each goes through the same safe reading and preprocessing as webcam frames.
        Returns (added, skipped, why the first skipped one was skipped or "").
        """
        with self._lock:
            room = self.max_frames - len(self._frames_of(self._get(client), name))
        small, skipped, why = [], 0, ""
        for source in sources:
            if len(small) >= room:
                skipped += 1
                why = why or f"“{name}” is full ({self.max_frames} pictures)."
                continue
            try:
                small.append(frame_to_uint8(source, self.look))  # outside the lock: the slow part
            except ImageError as e:
                skipped += 1
                why = why or str(e)
        with self._lock:
            frames = self._frames_of(self._get(client), name)
            for frame in small[: max(0, self.max_frames - len(frames))]:
                c = self._get(client)
                frames[c.next_id] = frame
                c.next_id += 1
            self._evict(keep=client)
        return len(small), skipped, why

    # -- frames -----------------------------------------------------------
    def frames(self, client: str, name: str, newest: int | None = None) -> list[tuple[int, np.ndarray]]:
        """(frame id, uint8 frame) pairs of a class, oldest first; with `newest`, only the last ones."""
        with self._lock:
            items = list(self._frames_of(self._get(client), name).items())
        return items[-newest:] if newest else items

    def delete_frames(self, client: str, name: str, ids) -> int:
        """Delete frames of a class by id (unknown ids are ignored); returns how many were deleted."""
        with self._lock:
            frames = self._frames_of(self._get(client), name)
            gone = [i for i in ids if frames.pop(i, None) is not None]
            return len(gone)

    def to_dataset(self, store, client: str, name: str = "webcam"):
        """Save the student's captures as one of their datasets (lab.user_datasets.UserDatasets).

        Returns the UserDatasetInfo; its dataset_id is what training takes.

        Raises:
            CaptureError: fewer than two classes, or a class with fewer than MIN_FRAMES_TO_TRAIN frames.
        """
        with self._lock:
            c = self._get(client, missing_ok=True)
            classes = [(n, list(f.values())) for n, f in c.classes.items()] if c else []
        if len(classes) < 2:
            raise CaptureError("Training needs at least two classes: add another class and record frames into it.")
        few = [f"“{n}” ({len(f)})" for n, f in classes if len(f) < MIN_FRAMES_TO_TRAIN]
        if few:
            raise CaptureError(f"Every class needs at least {MIN_FRAMES_TO_TRAIN} frames; too few in: "
                               f"{', '.join(few)}. Record more, or remove the class.")
        x = np.stack([f for _, frames in classes for f in frames])
        y = np.concatenate([np.full(len(frames), i, np.int64) for i, (_, frames) in enumerate(classes)])
        grey = self.look.channels == 1
        why = (f"Pictures used at {self.look.height}×{self.look.width}, {'grey' if grey else 'in colour'}: webcam frames "
               f"are photos, shrunk as they are recorded to the lab's size for photos.")
        return store.add(client, name, x, y, [n for n, _ in classes], self.look, source="webcam", look_why=why)

    # -- internals (call with the lock held) --------------------------------
    def _get(self, client: str, create: bool = False, missing_ok: bool = False) -> _Client | None:
        c = self._clients.get(client)
        if c is None:
            if missing_ok:
                return None
            if not create:
                raise CaptureError("You have no classes yet: type a class name and press Add class.")
            c = self._clients[client] = _Client()
        self._clients.move_to_end(client)  # most recently active last: eviction takes from the front
        self._evict(keep=client)
        return c

    def _frames_of(self, c: _Client, name: str) -> OrderedDict:
        if name not in c.classes:
            raise CaptureError(f"There is no class “{name}”: pick one of yours, or add it first."
                               if name else "Pick a class first (or add one).")
        return c.classes[name]

    def _evict(self, keep: str) -> None:
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        total = sum(c.frame_count() for c in self._clients.values())
        for client in list(self._clients):
            if total <= self.max_total_frames:
                break
            if client != keep:
                total -= self._clients.pop(client).frame_count()
