"""Where the model looks, in headless Chromium (issue 14): a mistake in the evaluation gallery opens its
heatmap, the webcam shows a live heatmap that the switch turns off and on, and both pass the
accessibility audit. The fake camera plays test_browser_webcam.py's handwritten 7.
Screenshots go to artifacts/screenshots/ like test_browser.py's.
"""

from __future__ import annotations

import pytest

from tests.test_browser import (  # noqa: F401  (page is a fixture; it uses this module's browser)
    open_try, page, predicted, shot, sync_api, train_default_run, wait_idle,
)
from tests.test_browser_a11y import audit, axe_source, report  # noqa: F401  (axe_source is a fixture)
from tests.test_browser_webcam import VIEW, browser, camera_file, wait_new_view  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = sync_api.expect
HEAT = "#try-heat img"
MISTAKE_HEAT = "#mistake-heat img[alt^='Where the model looked']"


def test_a_mistake_opens_its_heatmap_and_the_webcam_shows_a_live_one(page, axe_source):
    found: dict = {}
    train_default_run(page)
    # -- the evaluation gallery: press a mistake, see where the model looked
    first = page.locator("#mistakes button[data-mistake]").first
    expect(first).to_be_visible()
    said = first.locator("figcaption").inner_text().split("·")[0].replace("said", "").strip()
    first.click()
    heat = page.locator(MISTAKE_HEAT)
    expect(heat).to_be_visible()
    assert f"said “{said}”" in heat.get_attribute("alt")
    expect(page.locator("#mistake-heat")).to_contain_text(f"Why “{said}”?")
    page.locator("#mistake-heat").scroll_into_view_if_needed()
    shot(page, "evaluation-mistake-heatmap")
    audit(page, axe_source, "Train-evaluation-mistake-heatmap", found)
    # the keyboard reaches a mistake too: its button, named by what it shows
    second = page.locator("#mistakes button[data-mistake]").nth(1)
    if second.count():
        old = heat.get_attribute("src")
        second.focus()
        page.keyboard.press("Enter")
        page.wait_for_function("""([sel, old]) => { const i = document.querySelector(sel);
            return i && i.getAttribute('src') !== old; }""", arg=[MISTAKE_HEAT, old], polling=200)

    # -- the webcam: a live heatmap next to what the model sees
    open_try(page, "Webcam")
    switch = page.get_by_label("Show where the model looks (heatmap)")
    expect(switch).to_be_checked()
    cam = page.locator("#try-webcam")
    cam.get_by_text("Click to Access Webcam").click()
    record = cam.locator("button[aria-label='capture photo']")
    record.click()
    expect(record).to_contain_text("Stop")
    wait_new_view(page)
    live = page.locator(HEAT)
    expect(live).to_be_visible()
    assert "Where the model looks when it says" in live.get_attribute("alt")
    first_src = live.get_attribute("src")
    page.wait_for_timeout(1500)  # a few more frames
    shot(page, "webcam-heatmap")
    audit(page, axe_source, "Try-webcam-heatmap", found)
    # switched off: the heatmap goes, the predictions keep coming; on again: it comes back
    switch.uncheck()
    expect(page.locator(HEAT)).to_have_count(0)
    page.wait_for_timeout(1500)  # frames keep coming (the camera plays one still picture: same view)
    expect(page.locator(HEAT)).to_have_count(0)
    expect(page.locator(VIEW)).to_be_visible()
    assert predicted(page)
    switch.check()
    expect(page.locator(HEAT)).to_be_visible()
    assert first_src.startswith("data:image/png")
    record.click()
    expect(record).to_contain_text("Record")
    assert not found, "axe-core found critical or serious problems:\n" + report(found)
