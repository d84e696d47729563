"""The teacher's key: compared in constant time, with a budget of wrong tries.

The key opens the teacher's console and every teacher endpoint, on a link the whole class has.
A student who tries keys in a loop gets WRONG_TRIES wrong answers in a WINDOW_S window; after
that, no *new* console opens (not even with the right key) until the oldest of those tries is
WINDOW_S old. Refusing the right key too is the point: a guard that still said "yes" to the
right key would let the guessing go on at full speed. A console already open keeps working (its
page proved the key before; lab.classroom passes `opened=True` for it), so the teacher's lesson
goes on while someone guesses; the message says what happened and when to try again.

At 10 tries a minute an 8-character key chosen from words takes days to find, and the default
key (16 random characters) stays out of reach. The price: a student who keeps guessing keeps new
consoles shut (the budget is the class's, since on a share link or a Space every request comes
from the same address); the teacher opens the console at the start of the lesson, and it stays
open. Part of the engine: no gradio, no engine imports.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import sys
import threading
import time
from collections import deque
from typing import Any, Callable

WRONG_TRIES = 10  # wrong keys in a window before new consoles stop opening
TRIES_ENV = "VISION_LAB_TEACHER_TRIES"  # overrides WRONG_TRIES (a test that tries every endpoint's refusal)
WINDOW_S = 60.0
WRONG = "that is not the teacher key (it was printed when the lab started)"


def allowed_tries() -> int:
    """WRONG_TRIES, or $VISION_LAB_TEACHER_TRIES when it is a whole number of at least 1."""
    try:
        return max(1, int(os.environ.get(TRIES_ENV, WRONG_TRIES)))
    except ValueError:
        return WRONG_TRIES


class KeyGuard:
    """Checks keys against `key`; `refusal()` answers None (the key opens) or why not."""

    def __init__(self, key: str, tries: int | None = None, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic):
        self._digest = hashlib.sha256(key.encode()).digest()
        self.tries, self.window_s, self._clock = tries or allowed_tries(), window_s, clock
        self._wrong: deque[float] = deque()  # when the recent wrong tries came, oldest first
        self._lock = threading.Lock()

    def refusal(self, given: Any, opened: bool = False) -> str | None:
        """None when `given` is the key (and, unless `opened`, the console is not locked); else why not.

        The check, the comparison and the count happen under one lock, so a burst of tries at once
        cannot slip past the budget. The key and the typed text are compared as SHA-256 digests:
        equal lengths, so the time taken does not tell the key's length either.
        """
        typed = hashlib.sha256(given.strip().encode() if isinstance(given, str) else b"").digest()
        with self._lock:
            now = self._clock()
            while self._wrong and now - self._wrong[0] >= self.window_s:
                self._wrong.popleft()
            if not opened and len(self._wrong) >= self.tries:
                wait = math.ceil(self.window_s - (now - self._wrong[0]))
                return (f"too many wrong teacher keys in the last minute (someone may be guessing): the console "
                        f"opens again in {wait} s. A console already open keeps working.")
            if hmac.compare_digest(typed, self._digest):
                return None
            self._wrong.append(now)
            if len(self._wrong) > self.tries:
                self._wrong.popleft()  # only the last `tries` matter: the memory stays flat under a flood
            if len(self._wrong) == self.tries:
                # the teacher reads the server's output (a Colab cell, a terminal): say it there too
                print(f"Vision Lab: {self.tries} wrong teacher keys within {self.window_s:.0f} s; no new class "
                      "console opens until a minute has passed without them (open consoles keep working).",
                      file=sys.stderr, flush=True)
        return WRONG

    @property
    def locked(self) -> bool:
        """Whether a new console would be refused now (for a status line)."""
        with self._lock:
            now = self._clock()
            return len(self._wrong) >= self.tries and now - self._wrong[0] < self.window_s
