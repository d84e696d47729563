"""The class as the teacher runs it: who is on the link, the locks, the preset, the limits.

One `Classroom` per app. It holds what the teacher decides for the whole class and answers the
teacher's board; the queue itself stays lab.jobs.JobManager's (the classroom sets its pause, its
time limit and its length, and installs `admit` as the queue's `rules`, so a job that breaks a lock
is refused wherever it comes from: the page or the API).

- The teacher's key: every teacher action passes it, compared in constant time, with a budget of
  wrong tries (`check_key`, lab.teacher_key).
- Students: each identity that opens the page or trains joins, and is shown by the nickname they
  typed, else "student 1, 2, …" in the order they joined: a display name, never their id. At most
  `max_students` are remembered (the least recently seen forgotten first), so the board's memory
  stays flat as classes come and go.
- Locks (`parse_locks`): per HParams field, the values allowed ({"allowed": [...]}) or a range
  ({"min": .., "max": ..}). `check` refuses settings outside them, naming the lock; `settle`
  moves settings inside them (what a student's controls show).
- The preset: a partial settings dict every student's Train tab takes. Precedence of what a
  student's controls show, highest first: locks, the preset, a settings link, their last settings.
- `version` goes up whenever the locks or the preset change: a page that showed version n
  has nothing new to show while it is still n.

Part of the engine: no gradio. Layer: above lab.jobs (it steers the queue).
"""

from __future__ import annotations

import math
import re
import secrets
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from lab.contract import Board, Limits, StudentRow
from lab.hparams import FIELD_BY_NAME, HParams, HParamsError, number_text, validate
from lab.jobs import JobError, JobManager
from lab.teacher_key import KeyGuard

MAX_NICKNAME = 24  # characters: a name on a board, not a sentence
MAX_STUDENTS = 1000  # identities the board remembers; the least recently seen are forgotten beyond it
TEACHER = "the teacher"  # who stopped a job, as a student reads it


class ClassroomError(ValueError):
    """A teacher's or a student's request was refused; the message says why."""


class WrongKey(ClassroomError):
    """The teacher's key was missing or wrong."""


class LockError(JobError):
    """Settings outside the teacher's locks (a JobError: the queue refuses the job)."""


@dataclass(frozen=True)
class Lock:
    """What one knob may be: only `allowed` values, or a number within [low, high]."""

    name: str
    allowed: tuple | None = None
    low: float | None = None
    high: float | None = None

    def permits(self, value: Any) -> bool:
        if self.allowed is not None and value not in self.allowed:
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def fit(self, value: Any) -> Any:
        """The nearest value the lock permits: the first allowed one, or the value clamped to the range."""
        if self.permits(value):
            return value
        if self.allowed is not None:
            return self.allowed[0]
        if self.low is not None and value < self.low:
            return self.low
        return self.high

    def describe(self) -> str:
        """`Model (model): mlp, small_cnn` or `Epochs (epochs): 1 to 20`."""
        label = f"{FIELD_BY_NAME[self.name].label} ({self.name})"
        if self.allowed is not None:
            return f"{label}: {', '.join(_text(v) for v in self.allowed)}"
        if self.low is not None and self.high is not None:
            return f"{label}: {_text(self.low)} to {_text(self.high)}"
        return f"{label}: at least {_text(self.low)}" if self.low is not None else f"{label}: at most {_text(self.high)}"

    def to_json(self) -> dict:
        if self.allowed is not None:
            return {"allowed": list(self.allowed)}
        return {k: v for k, v in (("min", self.low), ("max", self.high)) if v is not None}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return number_text(value) if isinstance(value, float) else str(value)


def _one(name: str, value: Any) -> Any:
    """One value of one field, checked as validate() checks it (HParamsError names the field)."""
    try:
        return getattr(validate({name: value}), name)
    except HParamsError as e:
        if name != "fine_tune_epochs" or len(e.problems) != 1 or "only apply" not in e.problems[0]:
            raise
        return int(value)  # in range; it only needs a transfer model, which the lock is not about


def parse_locks(raw: Any) -> dict[str, Lock]:
    """Locks from untrusted JSON: {field: {"allowed": [values]} or {"min": n, "max": n}}; {} lifts them.

    Raises:
        ClassroomError: every problem at once, each naming the field.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ClassroomError('locks must be an object like {"model": {"allowed": ["mlp"]}, "epochs": {"max": 20}}')
    locks, problems = {}, []
    for name, spec in list(raw.items())[:len(FIELD_BY_NAME) + 1]:
        f = FIELD_BY_NAME.get(name) if isinstance(name, str) else None
        if f is None:
            problems.append(f"no setting called {str(name)[:40]!r} to lock (known: {', '.join(FIELD_BY_NAME)})")
            continue
        if not isinstance(spec, dict) or not spec or set(spec) - {"allowed", "min", "max"}:
            problems.append(f'{f.label} ({name}): a lock is {{"allowed": [values]}} or {{"min": n, "max": n}}')
            continue
        try:
            if "allowed" in spec:
                values = spec["allowed"]
                if set(spec) != {"allowed"} or not isinstance(values, list) or not values or len(values) > 100:
                    raise ClassroomError("allowed must be a list of 1 to 100 values (and alone)")
                allowed = tuple(dict.fromkeys(_one(name, v) for v in values))
                locks[name] = Lock(name, allowed=allowed)
            else:
                if f.kind not in (int, float):
                    raise ClassroomError("only a number has a range: use allowed")
                low = _one(name, spec["min"]) if spec.get("min") is not None else None
                high = _one(name, spec["max"]) if spec.get("max") is not None else None
                if low is None and high is None:
                    raise ClassroomError("give min, max or both")
                if low is not None and high is not None and low > high:
                    raise ClassroomError(f"min ({_text(low)}) is above max ({_text(high)})")
                if f.ladder and not [v for v in f.ladder if (low is None or v >= low) and (high is None or v <= high)]:
                    raise ClassroomError("no value of the usual steps lies in that range")
                locks[name] = Lock(name, low=low, high=high)
        except (HParamsError, ClassroomError) as e:
            problems.append(f"{f.label} ({name}): {e}" if isinstance(e, ClassroomError) else str(e))
    if len(raw) > len(FIELD_BY_NAME):
        problems.append("more locks than there are settings")
    if problems:
        raise ClassroomError("; ".join(problems))
    return locks


def check(hp: HParams, locks: dict[str, Lock]) -> None:
    """Refuse settings outside the locks, naming each lock broken (LockError)."""
    broken = [f"{lock.describe()}, not {_text(getattr(hp, name))}" for name, lock in locks.items()
              if not lock.permits(getattr(hp, name))]
    if broken:
        raise LockError(f"the teacher locked {'; '.join(broken)}")


def settle(hp: HParams, locks: dict[str, Lock]) -> HParams:
    """`hp` moved inside the locks (what a student's controls show); still a valid HParams."""
    values = {name: lock.fit(getattr(hp, name)) for name, lock in locks.items()}
    values = {**hp.to_dict(), **values}
    try:
        return validate(values)
    except HParamsError:  # e.g. fine-tuning epochs left over after the model lock chose a model without a backbone
        return validate({**values, "fine_tune_epochs": 0})


def clean_nickname(text: Any) -> str:
    """A nickname as the board shows it: printable, one line, at most MAX_NICKNAME characters."""
    if not isinstance(text, str):
        raise ClassroomError("a nickname is text")
    text = "".join(c for c in unicodedata.normalize("NFC", text) if unicodedata.category(c)[0] not in "CZ" or c == " ")
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > MAX_NICKNAME:
        raise ClassroomError(f"a nickname is at most {MAX_NICKNAME} characters")
    if re.fullmatch(r"(?i)student\s*\d+", text):
        raise ClassroomError("that is how the board names students without a nickname: pick another")
    return text


class Classroom:
    """The teacher's decisions for the class, and the board; safe to share between threads.

    Args:
        jobs: the class's JobManager (its pause, time limit and length are set from here).
        runs: the RunStore (the board's best runs; clearing the class).
        datasets: the students' own datasets (lab.user_datasets.UserDatasets), cleared with the class.
        key: the teacher's key; a random one when None (`key` says it, for the start-up line).
    """

    def __init__(self, jobs: JobManager, runs, datasets=None, key: str | None = None, max_students: int = MAX_STUDENTS,
                 captures=None):
        if key is not None and (not isinstance(key, str) or len(key.strip()) < 8):
            raise ClassroomError("the teacher key must be at least 8 characters (a short word is guessed quickly)")
        self.key = key.strip() if key else secrets.token_urlsafe(12)
        self.guard = KeyGuard(self.key)
        self.jobs, self.runs, self.datasets = jobs, runs, datasets
        self.captures = captures  # lab.captures.CaptureStore: webcam frames not yet saved as datasets
        self._lock = threading.Lock()
        # owner -> their number (in the order they joined), least recently seen first: at most max_students
        self._joined: OrderedDict[str, int] = OrderedDict()
        self._next_number = 1
        self.max_students = max_students
        self._nicknames: dict[str, str] = {}
        self.locks: dict[str, Lock] = {}
        self.preset: dict[str, Any] = {}  # field -> value: only the fields the teacher set
        self.limits = Limits(queue_max=jobs.max_queue)
        self.version = 0  # up with every change of the locks or the preset
        self.preset_version = 0  # up with every push of a preset
        self.clears = 0  # up with every "clear the class" (with `version`: open pages then say so and refresh)
        jobs.rules = self.admit

    # -- the teacher ----------------------------------------------------------------------------
    def check_key(self, key: Any, opened: bool = False) -> None:
        """Refuse (WrongKey) unless `key` is the teacher's; constant-time whatever its length.

        After too many wrong keys in a minute, new consoles stay shut for a while, even for the
        right key (lab.teacher_key); `opened`: the key comes from a console page that proved it
        before (server-side state), which keeps working.
        """
        refusal = self.guard.refusal(key, opened)
        if refusal is not None:
            raise WrongKey(refusal)

    def set_locks(self, raw: Any) -> dict[str, Lock]:
        locks = parse_locks(raw)
        with self._lock:
            self.locks = locks
            self.version += 1
        return locks

    def push_preset(self, raw: Any) -> dict[str, Any]:
        """Keep a partial settings dict for every student's Train tab; {} withdraws it.

        Raises:
            HParamsError: a value no control allows (each named).
        """
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise HParamsError(["a preset is an object of setting: value, like {\"model\": \"small_cnn\", \"epochs\": 5}"])
        checked = validate(raw)  # unknown keys and bad values refused, every one named
        preset = {k: getattr(checked, k) for k in raw}
        with self._lock:
            self.preset = preset
            self.version += 1
            self.preset_version += 1
        if preset:  # the class will train this next: compile its programs while the queue is idle (issue 18)
            self.jobs.warm_up(checked)
        return preset

    def set_limits(self, raw: Any) -> Limits:
        """{job_seconds, queue_max}: a missing key keeps its value; job_seconds None or 0 lifts the limit."""
        if not isinstance(raw, dict) or set(raw) - {"job_seconds", "queue_max"}:
            raise ClassroomError('limits are an object like {"job_seconds": 120, "queue_max": 30}')
        seconds, queue_max = raw.get("job_seconds", self.limits.job_seconds), raw.get("queue_max", self.limits.queue_max)
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                    or not math.isfinite(seconds) or not 0 <= seconds <= 24 * 3600):
            raise ClassroomError("job_seconds is a number of seconds from 0 (no limit) to 86400")
        if queue_max is not None and (isinstance(queue_max, bool) or not isinstance(queue_max, (int, float))
                                      or int(queue_max) != queue_max or not 1 <= queue_max <= 10_000):
            raise ClassroomError("queue_max is a whole number of jobs from 1 to 10000")
        limits = Limits(float(seconds) if seconds else None, int(queue_max) if queue_max is not None else self.jobs.max_queue)
        with self._lock:
            self.limits = limits
            self.jobs.job_seconds = limits.job_seconds  # from the next job that starts
            self.jobs.max_queue = limits.queue_max
        return limits

    def pause(self, paused: Any) -> bool:
        if not isinstance(paused, bool):
            raise ClassroomError("paused is true or false")
        self.jobs.pause(paused)
        return paused

    def stop_job(self, job_id: Any) -> dict:
        try:
            job = self.jobs.stop(job_id, by=TEACHER)
        except JobError:
            raise ClassroomError(f"no job called {str(job_id)[:64]!r} (it may have been forgotten)") from None
        return {"job_id": job.job_id, "student": self.name(job.owner), "state": job.state, "message": job.message}

    def stop_all(self) -> list[str]:
        return self.jobs.stop_all(by=TEACHER)

    def clear(self) -> dict:
        """The end of a lesson: stop every job, then delete every run, every student's dataset and
        every webcam frame not yet saved as one (students' faces, often)."""
        from lab.runs import RunNotFound

        stopped = self.stop_all()
        for job_id in stopped:  # a running job saves its partial run when it stops: wait, then delete that too
            self.jobs.wait(job_id, timeout=60)
        runs = 0
        for info in self.runs.list():
            try:
                self.runs.delete(info.run_id)
                runs += 1
            except RunNotFound:
                continue
        # the frames first: a student saving them as a dataset meanwhile then finds none, or saves
        # before the datasets go (never a dataset of faces left after the clear)
        frames = self.captures.clear_all() if self.captures is not None else 0
        datasets = self.datasets.clear() if self.datasets is not None else 0
        self.jobs.forget_ended()
        with self._lock:
            self.clears += 1
            self.version += 1
        return {"stopped_jobs": len(stopped), "deleted_runs": runs, "deleted_datasets": datasets,
                "deleted_frames": frames}

    # -- students -------------------------------------------------------------------------------
    def join(self, owner: str) -> str:
        """Note a student on the link (opening the page, training); returns their display name."""
        with self._lock:
            if owner in self._joined:
                self._joined.move_to_end(owner)
            else:
                self._joined[owner], self._next_number = self._next_number, self._next_number + 1
                while len(self._joined) > self.max_students:  # a new student's arrival forgets the longest gone
                    gone, _ = self._joined.popitem(last=False)
                    self._nicknames.pop(gone, None)
        return self.name(owner)

    def leave(self, owner: str) -> None:
        """Take someone off the board (the teacher's own page); the others keep their numbers."""
        with self._lock:
            self._joined.pop(owner, None)
            self._nicknames.pop(owner, None)

    def name(self, owner: str) -> str:
        """The display name: the nickname, else "student N" (never the id)."""
        with self._lock:
            if owner in self._nicknames:
                return self._nicknames[owner]
            number = self._joined.get(owner)
        return f"student {number}" if number else "a student who has left"

    def set_nickname(self, owner: str, text: Any) -> str:
        """Set (or, with "", drop) a student's nickname; one taken by a classmate gets a number added."""
        nick = clean_nickname(text)
        self.join(owner)
        with self._lock:
            if not nick:
                self._nicknames.pop(owner, None)
            else:
                taken = {v.casefold() for k, v in self._nicknames.items() if k != owner}
                shown, n = nick, 2
                while shown.casefold() in taken:
                    shown, n = f"{nick} ({n})", n + 1
                self._nicknames[owner] = shown
        return self.name(owner)

    def admit(self, owner: str, hp: HParams) -> None:
        """The queue's rule for every job: inside the locks (LockError names the lock); the student joins."""
        check(hp, self.locks)
        self.join(owner)

    def steering(self) -> tuple[int, int, dict[str, Lock], dict[str, Any]]:
        """(version, preset_version, locks, preset), read together: what a student's page shows."""
        with self._lock:
            return self.version, self.preset_version, dict(self.locks), dict(self.preset)

    def settings_for(self, hp: HParams, preset: bool = True) -> HParams:
        """What a student's controls show, from `hp` (a link's or their last settings): the preset
        over it (unless `preset` is False: it was applied already), then the locks over both."""
        with self._lock:
            preset, locks = (dict(self.preset) if preset else {}), dict(self.locks)
        if preset:
            try:
                hp = validate({**hp.to_dict(), **preset})
            except HParamsError:  # e.g. a transfer preset's fine-tuning with a link's model: the preset whole
                hp = validate(preset)
        return settle(hp, locks)

    # -- the board ------------------------------------------------------------------------------
    def board(self) -> Board:
        """Every student who joined, in joining order, with their newest job and their best run."""
        views = self.jobs.latest_views()
        best: dict[str, Any] = {}
        for info in self.runs.list():
            score = info.best_val_accuracy if info.best_val_accuracy is not None else -1.0
            if info.owner not in best or score > (best[info.owner].best_val_accuracy or -1.0):
                best[info.owner] = info
        with self._lock:
            joined = sorted(self._joined, key=self._joined.get)
        students = []
        for owner in joined:
            view, run = views.get(owner), best.get(owner)
            students.append(StudentRow(
                student=self.name(owner), state=view.state if view else "",
                epoch=view.progress.epoch if view else None, val_accuracy=view.val_accuracy if view else None,
                best_val_accuracy=run.best_val_accuracy if run else None, run_id=run.run_id if run else None,
                job_id=view.job_id if view else None, rows=view.rows if view else [],
                best_title=run.title() if run else ""))
        return Board(students, self.jobs.queue_length(), self.jobs.paused, dict(self.locks), self.limits)

    def owner_of_run(self, run_id: str) -> str:
        """The display name of a run's student (project mode's title)."""
        return self.name(self.runs.info(run_id).owner)
