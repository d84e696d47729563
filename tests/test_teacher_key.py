"""The teacher's key holds against guessing (lab/teacher_key.py): a budget of wrong tries a minute."""

from __future__ import annotations

import pytest

from lab.classroom import WrongKey
from lab.teacher_key import WRONG, KeyGuard
from tests.test_classroom import classroom


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_after_the_budget_of_wrong_keys_no_new_console_opens_for_a_minute_but_open_ones_keep_working():
    clock = Clock()
    guard = KeyGuard("owl-7-quartz", tries=3, window_s=60, clock=clock)
    assert guard.refusal("owl-7-quartz") is None
    for i in range(3):
        clock.now += 1
        assert guard.refusal(f"guess-{i}") == WRONG
    assert guard.locked
    said = guard.refusal("owl-7-quartz")  # the right key too: else the guessing would go on at full speed
    assert said is not None and "too many wrong teacher keys" in said and "opens again in 58 s" in said
    assert guard.refusal("guess-3") == said  # a guess learns nothing while locked
    assert guard.refusal("owl-7-quartz", opened=True) is None  # a console that proved the key keeps working
    assert guard.refusal("guess-4", opened=True) == WRONG
    clock.now += 60  # a minute after the last wrong try
    assert not guard.locked and guard.refusal("owl-7-quartz") is None


def test_a_flood_of_wrong_keys_keeps_the_memory_flat():
    guard = KeyGuard("owl-7-quartz", tries=5, clock=Clock())
    for i in range(10_000):
        guard.refusal(str(i), opened=True)  # `opened` tries are checked (and counted) as well
    assert len(guard._wrong) == 5


def test_the_classroom_refuses_new_consoles_after_the_budget(monkeypatch):
    monkeypatch.setenv("VISION_LAB_TEACHER_TRIES", "2")
    room = classroom(key="owl-7-quartz")
    for guess in ("owl", "quartz"):
        with pytest.raises(WrongKey, match="not the teacher key"):
            room.check_key(guess)
    with pytest.raises(WrongKey, match="too many wrong teacher keys"):
        room.check_key("owl-7-quartz")
    room.check_key("owl-7-quartz", opened=True)


def test_a_burst_of_guesses_at_once_gets_no_more_answers_than_the_budget():
    import threading

    guard = KeyGuard("owl-7-quartz", tries=3, clock=Clock())
    answers, start = [], threading.Barrier(40)

    def guess(i):
        start.wait()
        answers.append(guard.refusal(f"guess-{i}"))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert answers.count(WRONG) == 3 and len(answers) == 40  # the other 37 learnt nothing
