"""Who may start costly work: a bound on new identities per network address.

An identity (a browser's random client id, or one gradio_client session) is free to make, so
limits per identity ("one job at a time", "20 datasets") hold only per made-up identity. This
bounds how many *new* identities one address may bring in a window of time. Its default lets a
whole lecture hall in behind one school NAT, a Colab share tunnel or a Space's proxy (where every
student has the same address); a script that invents identities by the hundred is refused.

Part of the engine: no gradio. Bounded memory: at most `max_known` identities and
`max_addresses` addresses are remembered, the least recently seen forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

NEW_PER_ADDRESS = 200  # new identities one address may bring in per window (the teacher can raise it)
WINDOW_SECONDS = 3600.0


class AdmissionError(ValueError):
    """Refused: the message says why and what to do."""


class Admission:
    """Admit an identity's costly requests (training, adding a dataset).

    Args:
        new_per_address: new identities admitted per address per window; 0 turns the bound off.
        window: seconds.
        max_known: identities remembered (an identity forgotten counts as new when it comes back).
        max_addresses: addresses remembered.
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, new_per_address: int = NEW_PER_ADDRESS, window: float = WINDOW_SECONDS,
                 max_known: int = 20_000, max_addresses: int = 5_000, clock=time.monotonic):
        self.new_per_address, self.window = int(new_per_address), float(window)
        self._max_known, self._max_addresses, self._clock = max_known, max_addresses, clock
        self._lock = threading.Lock()
        self._known: OrderedDict[str, None] = OrderedDict()
        self._arrivals: OrderedDict[str, deque] = OrderedDict()  # address -> times new identities came

    def admit(self, address: str | None, identity: str) -> None:
        """Raise AdmissionError when `identity` is new and `address` has brought too many lately."""
        with self._lock:
            if identity in self._known:
                self._known.move_to_end(identity)
                return
            if self.new_per_address > 0:
                now = self._clock()
                key = address or "unknown"
                times = self._arrivals.pop(key, None) or deque()
                while times and now - times[0] > self.window:
                    times.popleft()
                self._arrivals[key] = times
                if len(times) >= self.new_per_address:
                    raise AdmissionError(
                        f"too many new students from one address ({self.new_per_address} in "
                        f"{self.window / 60:g} minutes): keep using the same page or client, or ask the "
                        "teacher to raise the limit (--new-students-per-address)")
                times.append(now)
                while len(self._arrivals) > self._max_addresses:
                    self._arrivals.popitem(last=False)
            self._known[identity] = None
            while len(self._known) > self._max_known:
                self._known.popitem(last=False)
