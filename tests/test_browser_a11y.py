"""Accessibility, in headless Chromium: an axe-core audit of every tab, and the lab by keyboard alone.

The audit injects axe-core (the npm package; `.ci/run` installs it with
`npm install --prefix .node axe-core@4`, or point $AXE_CORE at an axe.min.js) and runs the WCAG 2 A
and AA rules on each tab as a new student sees it and after a run has trained and predicted. Any
critical or serious violation fails, listed with its rule, the elements and axe's help. Without
axe-core the audit is skipped on a laptop; in CI ($CI set) it fails. Screenshots go to
artifacts/screenshots/ like test_browser.py's.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.test_browser import (  # noqa: F401  (page is a fixture; `browser` is conftest's)
    DIGIT_3, ROOT, TRAIN_TIMEOUT_MS, UI_TIMEOUT_MS, open_lab, page, predicted, shot, status,
    sync_api, train_default_run, wait_idle, wait_status,
)

pytestmark = [pytest.mark.browser]

AXE_JS = Path(os.environ.get("AXE_CORE", ROOT / ".node" / "node_modules" / "axe-core" / "axe.min.js"))
AXE_INSTALL = "npm install --prefix .node axe-core@4"
TAGS = ["wcag2a", "wcag2aa"]
FAIL_ON = ("critical", "serious")
TABS = ("Train", "Try", "Data", "Capture")
RUN_AXE = """async tags => {
    const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
    return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
        nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}));
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE_JS.exists():
        reason = f"axe-core not found at {AXE_JS}: run `{AXE_INSTALL}` (or set $AXE_CORE)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # .ci/run installs it: missing there is a broken CI, not a skip
        pytest.skip(reason)
    return AXE_JS.read_text()


def axe_violations(page, axe_source: str) -> list[dict]:
    """axe's WCAG 2 A/AA violations on the page as it is now (hidden tabs are not audited)."""
    wait_idle(page)
    # and nothing is fading in or out: Gradio dims a pending output (to 0.2) and fades it back
    page.wait_for_function("""() => !document.querySelector('.pending') && !document.getAnimations()
        .some(a => a instanceof CSSTransition && a.playState === 'running')""", polling=100)
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(content=axe_source)
    return page.evaluate(RUN_AXE, TAGS)


def serious(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in FAIL_ON]


def report(found: dict[str, list[dict]]) -> str:
    """A readable list of what failed, per page state: rule, impact, help, then each element."""
    lines = []
    for where, violations in found.items():
        for v in violations:
            lines.append(f"[{where}] {v['impact']} {v['id']}: {v['help']} ({v['url']})")
            lines += [f"    {n['target']}\n      {n['summary'].replace(chr(10), ' / ')}" for n in v["nodes"]]
    return "\n".join(lines)


def audit(page, axe_source: str, where: str, found: dict) -> None:
    """Audit the page now; keep its critical and serious violations under `where`; screenshot it."""
    bad = serious(axe_violations(page, axe_source))
    if bad:
        found[where] = bad
    shot(page, f"a11y-{where}")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()
    sync_api.expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true")
    wait_idle(page)


# -- the audit ----------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_on_any_tab(axe_source, page, scheme):
    """Each tab as a new student first sees it, in the light theme and in the dark one (Gradio follows
    the computer's setting)."""
    if scheme == "dark":
        page.emulate_media(color_scheme="dark")
        open_lab(page)
        assert page.evaluate("() => document.body.classList.contains('dark')"), "Gradio did not switch to dark"
    found: dict[str, list[dict]] = {}
    for name in TABS:
        open_tab(page, name)
        if name == "Data":  # the sample grid arrives with the page's load events
            sync_api.expect(page.locator("#data-grid img")).to_be_visible()
        audit(page, axe_source, f"{name}-new-{scheme}", found)
    assert not found, "axe-core (WCAG 2 A/AA) found critical or serious problems:\n" + report(found)


def test_axe_finds_nothing_serious_after_training_and_predicting(axe_source, page, tmp_path):
    """What a student sees once they have used the lab: curves, previews, a prediction, their classes."""
    from tests.test_browser_capture import add_class
    from tests.zips import BLUE, RED, picture

    found: dict[str, list[dict]] = {}
    train_default_run(page)
    # The evaluation panel fills in after the run is saved (a chain of updates): audit the page it ends as.
    sync_api.expect(page.locator("#evaluation-summary")).to_contain_text("Accuracy", timeout=60_000)
    wait_idle(page)
    audit(page, axe_source, "Train-done", found)  # the curves, the share link, the done line, the evaluation

    page.get_by_text("Augmentation (random changes", exact=False).click()
    page.click("#augment-preview-button")
    sync_api.expect(page.locator("#augment-preview img")).to_be_visible(timeout=60_000)
    audit(page, axe_source, "Train-augmentation-preview", found)

    open_tab(page, "Try")
    sync_api.expect(page.locator("#run-dropdown input")).not_to_have_value("")
    page.set_input_files("#try-upload input[type=file]", str(DIGIT_3))
    predicted(page)
    audit(page, axe_source, "Try-predicted", found)  # the upload, the prediction, the model's view
    for source in ("Webcam", "Draw"):
        open_tab(page, source)
        audit(page, axe_source, f"Try-{source}", found)

    open_tab(page, "Data")
    page.get_by_role("button", name="Other samples").click()
    sync_api.expect(page.locator("#data-grid img")).to_be_visible()
    audit(page, axe_source, "Data-other-samples", found)

    open_tab(page, "Capture")
    for name, colour in (("red", RED), ("blue", BLUE)):
        add_class(page, name)
        files = []
        for i in range(3):
            files.append(tmp_path / f"{name}_{i}.png")
            files[-1].write_bytes(picture(colour, (48, 40), seed=i))
        page.set_input_files("#capture-files input[type=file]", [str(f) for f in files])
        sync_api.expect(page.locator("#capture-status")).to_contain_text(f"Added 3 pictures to {name}")
    sync_api.expect(page.locator("#capture-gallery .thumbnail-item")).to_have_count(3)
    audit(page, axe_source, "Capture-classes", found)  # the class choice, the counts, the thumbnails

    assert not found, "axe-core (WCAG 2 A/AA) found critical or serious problems:\n" + report(found)


# -- the keyboard -------------------------------------------------------------------------------
FOCUSED = """() => { const e = document.activeElement;
    return e ? e.outerHTML.slice(0, 160) : ''; }"""


def tab_to(page, matches: str, arg=None, most: int = 150) -> int:
    """Press Tab (only Tab) until the focused element satisfies the JS predicate `matches` (called
    with the element and `arg`); returns how many presses it took. Fails if it is never reached."""
    for n in range(1, most + 1):
        page.keyboard.press("Tab")
        if page.evaluate(f"([arg]) => {{ const e = document.activeElement; return !!e && ({matches})(e, arg); }}",
                         [arg]):
            return n
    pytest.fail(f"{most} presses of Tab never reached the element ({matches}, {arg!r}); "
                f"focus ended on {page.evaluate(FOCUSED)}")


def tab_to_id(page, selector: str) -> int:
    """Tab until the focused element matches a CSS selector."""
    return tab_to(page, "(e, sel) => e.matches(sel)", selector)


def tab_to_tab(page, name: str) -> int:
    """Tab until a tab button (role=tab) with this text is focused."""
    return tab_to(page, "(e, name) => e.getAttribute('role') === 'tab' && e.innerText.trim() === name", name)


def select_tab(page, name: str) -> None:
    tab_to_tab(page, name)
    page.keyboard.press("Enter")
    sync_api.expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true")
    wait_idle(page)


def type_number(page, selector: str, value: int) -> None:
    """Tab to a slider's number box, replace its value and confirm with Enter."""
    tab_to_id(page, selector)
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")


def test_keyboard_alone_trains_stops_switches_tabs_and_tries(page):
    """Tab, arrow keys, Enter and Space only: no mouse click from here on."""
    choosers = []  # listening from the start: Chromium then hands every file dialog to the test
    page.on("filechooser", lambda chooser: choosers.append(chooser))

    # Train a long run, then stop it: both buttons are reached and pressed by keyboard.
    type_number(page, "#epochs-slider input[type=number]", 60)
    sync_api.expect(page.locator("#epochs-slider input[type=range]")).to_have_value("60")
    before = status(page)
    tab_to_id(page, "#train-button")
    shot(page, "a11y-keyboard-train-focused")  # the focus ring on Train
    page.keyboard.press("Enter")
    wait_status(page, r"Queued|Preparing|Training", unlike=before)
    wait_status(page, r"Training", timeout=TRAIN_TIMEOUT_MS)
    assert tab_to_id(page, "#stop-button") == 1, "Stop should come right after Train"
    page.keyboard.press("Enter")
    stopped = wait_status(page, r"Stopped", timeout=15_000)
    assert "kept" in stopped, stopped

    # A second, short run to the end: the Try tab's dropdown then has two runs to choose from.
    type_number(page, "#epochs-slider input[type=number]", 3)
    tab_to_id(page, "#train-button")
    page.keyboard.press("Space")
    wait_status(page, r"Done", unlike=stopped, timeout=TRAIN_TIMEOUT_MS)

    # The tabs: Tab to one, Enter opens it.
    select_tab(page, "Try")
    run = page.locator("#run-dropdown input")
    sync_api.expect(run).to_have_value(re.compile(r"epochs 3 · \d+\.\d%$"))  # the newest run is selected, named by what it is
    # The run dropdown: focusing opens its list, the arrow keys move, Enter picks the stopped run.
    tab_to_id(page, "#run-dropdown input")
    options = page.get_by_role("option")
    sync_api.expect(options).to_have_count(2)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    sync_api.expect(run).to_have_value(re.compile(r"epochs 60 · .*stopped"))
    wait_idle(page)

    # The upload: a focusable button whose Enter opens the file dialog; the picture is then classified.
    select_tab(page, "Upload")
    tab_to(page, "e => !!e.closest('#try-upload') && e.tagName === 'BUTTON'")
    page.keyboard.press("Enter")
    deadline = time.time() + UI_TIMEOUT_MS / 1000
    while not choosers and time.time() < deadline:
        page.wait_for_timeout(100)
    assert choosers, "Enter on the upload button did not open the file dialog"
    choosers[0].set_files(str(DIGIT_3))
    assert predicted(page) in [str(d) for d in range(10)]
    shot(page, "a11y-keyboard-predicted")

    # The other inputs' tabs, and back to Train.
    for name in ("Draw", "Webcam", "Data", "Train"):
        select_tab(page, name)
    sync_api.expect(page.locator("#train-button")).to_be_visible()


def test_axe_finds_nothing_serious_on_the_teachers_class_tab(axe_source, page, app):
    """The Class tab on the teacher's link: locked, then open. The shared app was started without a
    key, so it made one and printed it with the teacher's link (read here from its log)."""
    printed = re.search(r"Class tab of (\S+) .*teacher key: (\S+)", app.log_path.read_text())  # the whole log: the start-up line is long scrolled out of its tail
    assert printed and printed.group(1).endswith("/?teacher"), app.log()[-2000:]
    found: dict[str, list[dict]] = {}
    page.goto("/?teacher")
    page.get_by_text(re.compile(r"^mlp: ")).wait_for()
    open_tab(page, "Class")
    audit(page, axe_source, "Class-locked", found)
    page.locator("#teacher-key input").fill(printed.group(2))
    page.click("#teacher-open")
    sync_api.expect(page.locator("#class-message")).to_contain_text("console is open")
    sync_api.expect(page.locator("#class-board")).to_be_visible()
    audit(page, axe_source, "Class-open", found)  # the board, the class chart, steer and control
    assert not found, "axe-core (WCAG 2 A/AA) found critical or serious problems:\n" + report(found)
