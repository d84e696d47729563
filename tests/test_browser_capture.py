"""Webcam capture in headless Chromium, as a student does it in Teachable Machine: name two classes,
hold a button to record frames from the webcam into each, delete a bad one, train on them.

Chromium's fake camera (--use-fake-device-for-media-stream) shows a moving green pattern, so two
classes recorded at different moments differ a little; only that training completes is checked,
not how accurate it is. Screenshots go to artifacts/screenshots/ like test_browser.py's.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.test_browser import (  # noqa: F401  (page is a fixture; `browser` is conftest's)
    TRAIN_TIMEOUT_MS, UI_TIMEOUT_MS, open_lab, page, shot, start_training, sync_api, wait_idle,
    wait_status,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATUS = "#capture-status"
HOLD = "#capture-hold .hold-btn"
THUMBS = "#capture-gallery .thumbnail-item"
COUNTS_JS = """() => Object.fromEntries([...document.querySelectorAll('#capture-counts table tbody tr')]
    .map(row => [...row.querySelectorAll('td')].map(cell => cell.innerText.trim()))
    .filter(cells => cells.length >= 2 && cells[0]).map(cells => [cells[0], Number(cells[1])]))"""


def open_capture(page) -> None:
    page.get_by_role("tab", name="Capture", exact=True).click()
    sync_api.expect(page.locator(HOLD)).to_be_visible()


def counts(page) -> dict[str, int]:
    """Frames per class, as the counts table shows them."""
    return page.evaluate(COUNTS_JS)


def add_class(page, name: str) -> None:
    page.locator("#capture-class-name textarea, #capture-class-name input").first.fill(name)
    page.click("#capture-add")
    sync_api.expect(page.locator(STATUS)).to_contain_text(f"Added “{name}”")
    sync_api.expect(page.locator("#capture-class input:checked")).to_have_value(name)


def pick_class(page, name: str) -> None:
    page.locator("#capture-class").get_by_text(name, exact=True).click()
    sync_api.expect(page.locator("#capture-gallery-title")).to_contain_text(f"“{name}”")
    wait_idle(page)


HOLD_AT_LEAST_MS = 500  # longer than HOLD_JS's TAP_MS (components/capture_tab.py)


def hold_to_record(page, name: str, frames: int = 0, ms: int = 0) -> str:
    """Hold the record button down with the mouse until class `name` has `frames` frames (the count
    grows live while held), or for `ms` milliseconds; returns the status line after letting go."""
    page.locator(HOLD).hover()
    page.mouse.down()
    held_since = time.monotonic()
    sync_api.expect(page.locator(HOLD)).to_contain_text("Recording")
    sync_api.expect(page.locator(STATUS)).to_contain_text(f"Recording into {name}")
    if frames:
        page.wait_for_function(f"() => ({COUNTS_JS})()[{name!r}] >= {frames}", timeout=UI_TIMEOUT_MS,
                               polling=200)
    # A press shorter than the button's tap time (350 ms) latches recording on: this is a hold.
    page.wait_for_timeout(max(ms, HOLD_AT_LEAST_MS - (time.monotonic() - held_since) * 1000))
    page.mouse.up()
    sync_api.expect(page.locator(HOLD)).to_contain_text("Hold to record")
    page.wait_for_function("sel => /Recorded|No frames|⚠️/.test(document.querySelector(sel)?.innerText || '')",
                           arg=STATUS)
    wait_idle(page)
    return page.locator(STATUS).inner_text()


def camera_on(page) -> None:
    cam = page.locator("#capture-webcam")
    cam.get_by_text("Click to Access Webcam").click()
    # the video is there with its own Record button: holding ours starts the stream
    sync_api.expect(cam.locator("button[aria-label='capture photo']")).to_be_visible()


def test_capture_two_classes_from_the_webcam_and_train(page):
    open_capture(page)
    add_class(page, "left")
    add_class(page, "right")
    assert counts(page) == {"left": 0, "right": 0}

    # Holding the button before the camera is on: a message says what to do, nothing is recorded.
    pick_class(page, "left")
    assert "No frames arrived" in hold_to_record(page, "left", ms=1000)
    assert counts(page) == {"left": 0, "right": 0}

    camera_on(page)
    said = hold_to_record(page, "left", frames=6)
    left = counts(page)["left"]
    assert left >= 6 and f"Recorded {left} frames into left" in said, (said, counts(page))
    sync_api.expect(page.locator(THUMBS)).to_have_count(left)

    # The keyboard (and a click) latch recording on until the next press: for devices that cannot hold.
    pick_class(page, "right")
    page.locator(HOLD).focus()
    page.keyboard.press("Space")
    sync_api.expect(page.locator(HOLD)).to_contain_text("press again to stop")
    page.wait_for_function(f"() => ({COUNTS_JS})().right >= 6", timeout=UI_TIMEOUT_MS, polling=200)  # the count grows live
    page.keyboard.press("Space")
    # Wait for Stop's own reply: "Recording into right" (the press's) also says "into right", and a
    # count read before Stop arrived could still grow.
    sync_api.expect(page.locator(STATUS)).to_contain_text(re.compile(r"Recorded \d+ frames? into right"))
    wait_idle(page)
    right = counts(page)["right"]
    assert f"Recorded {right} frames into right" in page.locator(STATUS).inner_text(), counts(page)
    # The stream keeps running, but nothing more is kept: wait for the page to send five more frames.
    sent = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" and "/gradio_api/" in r.url else None)
    page.wait_for_function("() => true")  # (let the listener attach before counting)
    deadline = time.time() + UI_TIMEOUT_MS / 1000
    while len(sent) < 5 and time.time() < deadline:
        page.wait_for_timeout(100)  # paces the sampling only; the condition decides
    assert len(sent) >= 5, f"the webcam stopped streaming: {sent}"
    wait_idle(page)
    assert counts(page) == {"left": left, "right": right}
    sync_api.expect(page.locator(THUMBS)).to_have_count(right)
    shot(page, "capture-recorded")

    # Delete a bad frame: select its thumbnail, press Delete selected.
    page.locator(THUMBS).nth(1).click()
    sync_api.expect(page.locator(STATUS)).to_contain_text("selected")
    shot(page, "capture-selected")
    page.click("#capture-delete")
    sync_api.expect(page.locator(STATUS)).to_contain_text("Deleted 1 frame")
    sync_api.expect(page.locator(THUMBS)).to_have_count(right - 1)
    assert counts(page) == {"left": left, "right": right - 1}

    # A reload finds the captures again (they are kept for this browser).
    open_lab(page)
    open_capture(page)
    page.wait_for_function(f"() => ({COUNTS_JS})().right === {right - 1}", polling=200)
    assert counts(page) == {"left": left, "right": right - 1}

    page.click("#capture-use")
    sync_api.expect(page.locator("#capture-result")).to_contain_text("Saved")
    dataset_id = page.locator("#capture-result code").inner_text()
    assert re.fullmatch(r"my-webcam@[0-9a-f]{10}", dataset_id), dataset_id
    shot(page, "capture-saved")

    page.get_by_role("tab", name="Train", exact=True).click()
    sync_api.expect(page.locator("#dataset-dropdown input")).to_have_value(
        re.compile(rf"^my webcam \(yours: 2 classes, {left + right - 1} images\)"))
    # A small set: the saved message says the largest batch size that works (a larger one is refused).
    hint = re.search(r"Only (\d+) of these pictures train", page.locator("#capture-result").inner_text())
    assert hint, page.locator("#capture-result").inner_text()
    box = page.locator("#batch-slider input[type=number]")
    box.fill(hint.group(1))
    box.press("Enter")
    start_training(page, epochs=3)
    done = wait_status(page, r"Done|Failed|Stopped", timeout=TRAIN_TIMEOUT_MS)
    assert "Done" in done, done


def test_captures_are_each_students_own(browser, app):
    """Two students at once: one's classes and frames never show on the other's page."""
    pages = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"],
                                      base_url=app.url)
        context.set_default_timeout(UI_TIMEOUT_MS)
        pages.append(context.new_page())
    amy, bob = pages
    try:
        for pg in pages:
            open_lab(pg)
            open_capture(pg)
        add_class(amy, "cats")
        add_class(amy, "dogs")
        camera_on(amy)
        hold_to_record(amy, "dogs", frames=1)  # adding a class selects it

        add_class(bob, "cars")
        assert counts(bob) == {"cars": 0}
        sync_api.expect(bob.locator("#capture-class")).not_to_contain_text(re.compile("cats|dogs"))
        bob.click("#capture-use")  # bob has one class: nothing to train on yet, and amy's are not his
        sync_api.expect(bob.locator("#capture-result")).to_contain_text("at least two classes")
        open_lab(bob)
        open_capture(bob)
        bob.wait_for_function(f"() => 'cars' in ({COUNTS_JS})()")
        assert counts(bob) == {"cars": 0}
    finally:
        for pg in pages:
            pg.context.close()
