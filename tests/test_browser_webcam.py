"""What students see is what the model gets: the webcam, the drawing pad and the insecure-page note,
in headless Chromium against `python lab_app.py` (fixtures and helpers from test_browser.py).

Chromium's fake camera here plays a picture the test makes (--use-file-for-fake-video-capture, a
Y4M file): a handwritten 7 from sample_data, which mirrored is not a 7. The webcam must hand the
model that picture the right way round while its preview stays mirrored like a selfie.
A host-resolver rule maps http://lab.test to 127.0.0.1: a page that is not localhost, so not a
secure context, as a classroom LAN address is (no traffic leaves this machine).
Screenshots go to artifacts/screenshots/ like test_browser.py's.
"""

from __future__ import annotations

import base64
import io
import re
from urllib.parse import urljoin

import numpy as np
import pytest
from PIL import Image

from tests.test_browser import (  # noqa: F401  (page is a fixture; it uses this module's browser)
    CHROMIUM, CHROMIUM_ARGS, DIGIT_3, LABEL_VALUE, ROOT, TIMING, UI_TIMEOUT_MS, open_try, page, predicted,
    shot, sync_api, train_default_run, upload, wait_loaded,
)
from tests.test_browser_capture import add_class, camera_on, hold_to_record, open_capture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DIGIT_7 = ROOT / "sample_data" / "examples" / "digit_7.png"
W, H = 640, 480
VIEW = "img[alt*='model receives']"  # "What the model sees": the prediction panel's picture
THUMBS = "#capture-gallery .thumbnail-item img"
MIRRORED = "matrix(-1, 0, 0, 1, 0, 0)"  # a CSS scaleX(-1)


# -- the fake camera ----------------------------------------------------------------------------
def camera_picture() -> Image.Image:
    """A W x H grey picture of a large handwritten 7 on its own paper colour."""
    digit = Image.open(DIGIT_7).convert("L").resize((360, 360), Image.BILINEAR)
    picture = Image.new("L", (W, H), int(np.median(np.asarray(digit))))
    picture.paste(digit, ((W - 360) // 2, (H - 360) // 2))
    return picture


def write_y4m(picture: Image.Image, path) -> None:
    """`picture` as a Y4M video (what Chromium's fake capture plays, in a loop): grey, so U = V = 128;
    Y in the video range 16-235, which Chromium expands back to 0-255."""
    y = np.rint(16 + np.asarray(picture, np.float64) * 219 / 255).astype(np.uint8)
    chroma = np.full((H // 2, W // 2), 128, np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(2):
            f.write(b"FRAME\n" + y.tobytes() + chroma + chroma)


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory):
    """(the picture as a PNG, to upload; the same picture as the camera's video)."""
    folder = tmp_path_factory.mktemp("camera")
    picture = camera_picture()
    picture.convert("RGB").save(folder / "seven.png")
    write_y4m(picture, folder / "seven.y4m")
    return folder / "seven.png", folder / "seven.y4m"


@pytest.fixture(scope="module")
def browser(camera_file):
    """test_browser.py's Chromium, its camera playing the 7, with lab.test resolving to 127.0.0.1."""
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera_file[1]}",
            "--host-resolver-rules=MAP lab.test 127.0.0.1"]
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield b
        finally:
            b.close()


# -- helpers ------------------------------------------------------------------------------------
def pixels(page, img) -> np.ndarray:
    """The grey pixels of an <img> on the page (a data: URI or a file the app serves)."""
    src = img.get_attribute("src")
    if src.startswith("data:"):
        data = base64.b64decode(src.split(",", 1)[1])
    else:
        data = page.request.get(urljoin(page.url, src)).body()
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float64)


def wait_new_view(page, old: str | None = None) -> str:
    """Wait until "what the model sees" shows a picture (other than `old`); returns its src."""
    page.wait_for_function("""([sel, old]) => { const i = document.querySelector(sel);
        return i && i.getAttribute('src') && i.getAttribute('src') !== old; }""", arg=[VIEW, old], polling=200)
    return page.locator(VIEW).get_attribute("src")


def assert_same_way_round(seen: np.ndarray, expected: np.ndarray, what: str) -> None:
    """`seen` is `expected` (give or take the camera's JPEG), not `expected` mirrored."""
    assert seen.shape == expected.shape, (what, seen.shape, expected.shape)
    same = np.abs(seen - expected).mean()
    mirrored = np.abs(seen - expected[:, ::-1]).mean()
    assert same < 12 and same * 3 < mirrored, f"{what}: off by {same:.1f} as it is, {mirrored:.1f} mirrored"


def panel_is_empty(page) -> None:
    sync_api.expect(page.locator(LABEL_VALUE)).to_have_count(0)
    sync_api.expect(page.locator(VIEW)).to_have_count(0)


def draw(page, strokes) -> None:
    """Draw on the pad with the mouse, without touching any tool first; `strokes` are lists of
    (dx, dy) from the pad's centre."""
    pad = page.locator("#try-sketch canvas").first
    pad.wait_for()
    box = pad.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for stroke in strokes:
        page.mouse.move(cx + stroke[0][0], cy + stroke[0][1])
        page.mouse.down()
        for dx, dy in stroke[1:]:
            page.mouse.move(cx + dx, cy + dy, steps=10)
        page.mouse.up()


SEVEN = [[(-50, -70), (50, -70), (0, 80)]]
THREE = [[(-40, -70), (40, -70), (40, 0), (-20, 0), (40, 0), (40, 70), (-40, 70)]]


# -- tests --------------------------------------------------------------------------------------
def test_webcam_gives_the_model_the_picture_the_right_way_round(page, camera_file):
    train_default_run(page)
    open_try(page, "Upload")
    upload(page, camera_file[0])
    by_upload = predicted(page)
    upload_view = pixels(page, page.locator(VIEW))

    page.get_by_role("tab", name="Webcam", exact=True).click()
    panel_is_empty(page)  # the upload's prediction is not the webcam's
    cam = page.locator("#try-webcam")
    cam.get_by_text("Click to Access Webcam").click()
    # the preview is mirrored like a selfie ...
    sync_api.expect(cam.locator("video")).to_be_visible()
    assert page.evaluate("() => getComputedStyle(document.querySelector('#try-webcam video')).transform") == MIRRORED
    record = cam.locator("button[aria-label='capture photo']")
    record.click()
    sync_api.expect(record).to_contain_text("Stop")
    # ... and the model gets the picture as it is: the same label and the same view as the upload
    wait_new_view(page)
    page.wait_for_timeout(1000)  # a few frames: the camera's first ones may still be dark
    by_webcam = predicted(page)
    webcam_view = pixels(page, page.locator(VIEW))
    shot(page, "webcam-right-way-round")
    record.click()
    sync_api.expect(record).to_contain_text("Record")
    assert by_webcam == by_upload, f"the webcam says {by_webcam!r}, the same picture uploaded {by_upload!r}"
    assert_same_way_round(webcam_view, upload_view, "what the model sees from the webcam")


def test_captured_frames_are_the_right_way_round(page, camera_file):
    from lab.captures import frame_to_uint8

    open_capture(page)
    add_class(page, "seven")
    camera_on(page)
    sync_api.expect(page.locator("#capture-webcam video")).to_be_visible()
    assert page.evaluate("() => getComputedStyle(document.querySelector('#capture-webcam video')).transform") == MIRRORED
    page.wait_for_timeout(1000)  # past the camera's first frames
    hold_to_record(page, "seven", frames=2, ms=500)  # held, not tapped (a tap would latch)
    shot(page, "capture-right-way-round")
    expected = np.asarray(Image.fromarray(frame_to_uint8(camera_file[0])).convert("L"), np.float64)
    assert_same_way_round(pixels(page, page.locator(THUMBS).last), expected, "a captured frame")


def test_draw_clear_and_draw_again_without_picking_a_tool(page):
    train_default_run(page)
    open_try(page, "Upload")
    upload(page, DIGIT_3)
    sync_api.expect(page.locator(LABEL_VALUE)).to_have_text("3")

    page.get_by_role("tab", name="Draw", exact=True).click()
    panel_is_empty(page)  # the upload's prediction is not shown next to the empty pad
    sync_api.expect(page.locator(TIMING)).to_contain_text("Draw something on the pad")
    sync_api.expect(page.locator("#try-sketch")).not_to_contain_text("select the draw tool")

    draw(page, SEVEN)  # no tool clicked: the brush is ready
    assert predicted(page) in [str(d) for d in range(10)]
    sync_api.expect(page.locator(TIMING)).to_contain_text("ms")
    shot(page, "draw-first")

    page.locator("#try-sketch button[aria-label='Clear canvas']").click()
    panel_is_empty(page)
    sync_api.expect(page.locator(TIMING)).to_contain_text("Draw something on the pad")
    shot(page, "draw-cleared")

    draw(page, THREE)  # again with no extra clicks
    assert predicted(page) in [str(d) for d in range(10)]
    sync_api.expect(page.locator(TIMING)).to_contain_text(re.compile(r"\d in [\d.]+ ms"))
    shot(page, "draw-again")

    page.get_by_role("tab", name="Upload", exact=True).click()  # back to the upload: its own prediction
    sync_api.expect(page.locator(LABEL_VALUE)).to_have_text("3")


def test_a_page_that_is_not_secure_says_why_the_webcam_cannot_start(browser, app):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"])
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        lan = context.new_page()  # as on a classroom LAN: plain http, not localhost
        lan.goto(f"http://lab.test:{app.port}/")
        lan.wait_for_selector("#train-button")
        assert lan.evaluate("window.isSecureContext") is False
        lan.get_by_role("tab", name="Try", exact=True).click()
        lan.get_by_role("tab", name="Webcam", exact=True).click()
        note = lan.locator("#try-webcam-insecure .insecure-note")
        sync_api.expect(note).to_be_visible()
        sync_api.expect(note).to_contain_text("--share")
        sync_api.expect(note).to_contain_text("--ssl-certfile")
        sync_api.expect(note).to_contain_text("localhost")
        lan.locator("#try-webcam").get_by_text("Click to Access Webcam").click()  # Gradio's own error, beside ours
        shot(lan, "webcam-not-secure")
        open_capture(lan)
        sync_api.expect(lan.locator("#capture-webcam-insecure .insecure-note")).to_be_visible()

        local = context.new_page()  # the same lab on 127.0.0.1: secure, no note and no gap for it
        local.goto(f"http://127.0.0.1:{app.port}/")
        wait_loaded(local)
        local.get_by_role("tab", name="Try", exact=True).click()
        local.get_by_role("tab", name="Webcam", exact=True).click()
        sync_api.expect(local.locator("#try-webcam")).to_be_visible()
        sync_api.expect(local.locator("#try-webcam-insecure")).to_be_hidden()
        open_capture(local)
        sync_api.expect(local.locator("#capture-webcam-insecure")).to_be_hidden()
    finally:
        context.close()
