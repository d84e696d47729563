"""Comparing runs in a browser (issue 13), as a new student would, on a desktop and on a phone.

Train twice on the digits with only the learning rate changed: the runs board names the change,
both runs' curves share one pair of charts with a legend that says which is which, the Try tab
names the runs the same way; then delete one (after a confirmation) and clear the rest. On a phone
(Playwright's iPhone 13 descriptor, in Chromium) Train, the status and the charts are on the first
screen and the knobs a tap away. Screenshots go to artifacts/screenshots/ (look at them).
"""

from __future__ import annotations

import re

import pytest

from tests.test_browser import (
    CHROMIUM, CHROMIUM_ARGS, TRAIN_TIMEOUT_MS, UI_TIMEOUT_MS, open_lab, open_try, set_epochs, shot, sync_api,
    train_default_run, wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = sync_api.expect
PHONE = "iPhone 13"
# The traces of a comparison chart by legend group (one group per run): name, dash, points, in the legend.
TRACE_SETS_JS = """sel => {
    const el = document.querySelector(sel + ' .js-plotly-plot');
    if (!el || !el._fullData) return null;
    const sets = {};
    for (const t of el._fullData) (sets[t.legendgroup] ||= []).push(
        {name: t.name, dash: (t.line && t.line.dash) || 'solid', points: t._length || 0, legend: t.showlegend});
    return sets;
}"""
CHARTS = ("#compare-loss-plot", "#compare-accuracy-plot")


def audit(page, where: str) -> None:
    """axe-core's critical and serious WCAG 2 A/AA violations on the page now must be none
    (tests/test_browser_a11y.py's audit; skipped where axe-core is not installed, as there)."""
    from tests.test_browser_a11y import AXE_JS, axe_violations, report, serious

    if AXE_JS.exists():
        bad = serious(axe_violations(page, AXE_JS.read_text()))
        assert not bad, report({where: bad})


@pytest.fixture(scope="module")
def playwright():
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def chromium(playwright):
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield b
    finally:
        b.close()


def phone_descriptor(playwright) -> dict:
    """The phone's viewport, pixel ratio, touch and user agent (its default browser is WebKit; Chromium here)."""
    return {k: v for k, v in playwright.devices[PHONE].items() if k != "default_browser_type"}


@pytest.fixture(params=["desktop", "phone"])
def student(request, playwright, chromium, app):
    """A new student's page on a desktop or a phone: (page, viewport name)."""
    if request.param == "phone":
        options = phone_descriptor(playwright)
    else:
        options = {"viewport": {"width": 1280, "height": 900}}
    context = chromium.new_context(base_url=app.url, **options)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_lab(page)
    try:
        yield page, request.param
        assert not errors, f"uncaught errors in the page: {errors}"
    finally:
        try:
            shot(page, request.node.name)
        finally:
            context.close()


def trace_sets(page, chart: str) -> dict:
    return page.evaluate(TRACE_SETS_JS, chart) or {}


def wait_trace_sets(page, n: int) -> None:
    """Both comparison charts hold exactly `n` runs' traces."""
    page.wait_for_function(f"""() => {{ const f = {TRACE_SETS_JS};
        return {list(CHARTS)}.every(c => f(c) && Object.keys(f(c)).length === {n}); }}""", polling=200)


def legend(page, chart: str) -> list[str]:
    return sorted(t["name"] for ts in trace_sets(page, chart).values() for t in ts if t["legend"] is not False)


def set_learning_rate(page, value: str) -> None:
    page.locator("#lr-dropdown input").click()
    page.get_by_role("option", name=value, exact=True).click()
    expect(page.locator("#lr-dropdown input")).to_have_value(value)


def board_rows(page):
    return page.locator("#runs-table tbody tr")


def new_runs(app, before: set[str]) -> list[str]:
    return [p.name for p in app.runs_dir.iterdir() if p.name not in before and (p / "meta.json").exists()]


def choose_to_delete(page, name_start: str) -> None:
    page.locator("#runs-delete-choice input").click()
    page.get_by_role("option", name=re.compile("^" + re.escape(name_start))).click()


def test_two_runs_with_one_knob_changed_are_compared_then_deleted(student, app):
    page, viewport = student
    if viewport == "desktop":  # the phone's links are not on a wide screen
        expect(page.locator("#to-knobs-link")).to_be_hidden()
    expect(page.locator("#runs-table")).to_contain_text("No runs yet")
    for hidden in ("#runs-picked", *CHARTS):  # no empty charts for a student without runs
        expect(page.locator(hidden)).to_be_hidden()

    before = {p.name for p in app.runs_dir.iterdir()}
    set_epochs(page, 2)
    train_default_run(page)
    expect(board_rows(page)).to_have_count(1, timeout=TRAIN_TIMEOUT_MS)
    expect(board_rows(page).first).to_contain_text("first run")
    [older] = new_runs(app, before)

    set_learning_rate(page, "0.03")
    train_default_run(page)
    expect(board_rows(page)).to_have_count(2, timeout=TRAIN_TIMEOUT_MS)
    [newer] = new_runs(app, before | {older})
    newest = board_rows(page).first
    expect(newest).to_contain_text("learning_rate 0.003 → 0.03")  # what changed, newest first
    expect(newest).to_contain_text(re.compile(r"mlp · lr 0\.03 · epochs 2 · \d+\.\d%"))
    expect(newest).to_contain_text(re.compile(r"\d+\.\d s"))  # its training time, saved with it
    expect(board_rows(page).nth(1)).to_contain_text("first run")

    # the latest two are ticked, and both runs' curves share each chart, one trace set per run
    ticked = page.locator("#runs-picked input[type=checkbox]:checked")
    expect(ticked).to_have_count(2)
    wait_trace_sets(page, 2)
    for chart in CHARTS:
        assert legend(page, chart) == ["lr 0.003", "lr 0.03"], legend(page, chart)
        for traces in trace_sets(page, chart).values():
            assert sorted(t["dash"] for t in traces) == ["dot", "solid"], traces  # validation dotted
            assert all(t["points"] > 0 for t in traces), traces
    page.locator("#runs-picked").scroll_into_view_if_needed()
    shot(page, f"runs_board-{viewport}-compared")
    audit(page, f"runs-board-{viewport}")

    # the Try tab names runs the same way
    open_try(page)
    expect(page.locator("#run-dropdown input")).to_have_value(re.compile(r"^mlp · lr 0\.03 · epochs 2 · \d+\.\d%$"))
    page.get_by_role("tab", name="Train", exact=True).click()

    # unticking a run takes its curves off the charts
    page.locator("#runs-picked label", has_text=re.compile(r"^\s*mlp · lr 0\.003")).click()
    wait_trace_sets(page, 1)
    [alone] = legend(page, CHARTS[1])
    assert alone.startswith("mlp · lr 0.03 · epochs 2 · "), alone  # a run alone is named in full

    # deleting asks first; Cancel keeps the run
    choose_to_delete(page, "mlp · lr 0.003")
    page.locator("#runs-delete").click()
    confirm = page.locator("#runs-confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text(re.compile(r"Delete mlp · lr 0\.003 · epochs 2 · \d+\.\d%\? This cannot be undone"))
    shot(page, f"runs_board-{viewport}-confirm")
    audit(page, f"runs-confirm-{viewport}")
    page.locator("#runs-confirm-cancel").click()
    expect(confirm).to_be_hidden()
    expect(board_rows(page)).to_have_count(2)
    assert (app.runs_dir / older).exists()

    choose_to_delete(page, "mlp · lr 0.003")
    page.locator("#runs-delete").click()
    page.locator("#runs-confirm-yes").click()
    expect(page.locator("#runs-note")).to_contain_text("Deleted 1 run")
    expect(board_rows(page)).to_have_count(1)
    expect(board_rows(page).first).to_contain_text("lr 0.03")
    assert not (app.runs_dir / older).exists() and (app.runs_dir / newer).exists()
    open_try(page)  # the Try tab's list lost it too
    page.locator("#run-dropdown input").click()
    options = [t.strip() for t in page.locator("ul[role=listbox] li").all_inner_texts() if t.strip()]
    assert len(options) == 1 and "mlp · lr 0.03 · epochs 2 · " in options[0], options
    page.keyboard.press("Escape")
    page.get_by_role("tab", name="Train", exact=True).click()

    # and clearing all of one's runs
    page.locator("#runs-clear").click()
    expect(confirm).to_contain_text("your only run")
    page.locator("#runs-confirm-yes").click()
    expect(page.locator("#runs-table")).to_contain_text("No runs yet")
    for hidden in ("#runs-picked", *CHARTS):  # no empty charts for a student without runs
        expect(page.locator(hidden)).to_be_hidden()
    assert not (app.runs_dir / newer).exists()
    wait_idle(page)


def in_first_screen(page, selector: str, whole: bool = True) -> bool:
    box, height = page.locator(selector).bounding_box(), page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and (box["y"] + box["height"] if whole else box["y"]) <= height


def test_on_a_phone_train_the_status_and_the_charts_come_first_and_the_knobs_are_a_tap_away(playwright, chromium, app):
    context = chromium.new_context(base_url=app.url, **phone_descriptor(playwright))
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    try:
        open_lab(page)
        page.evaluate("() => window.scrollTo(0, 0)")
        assert in_first_screen(page, "#train-button") and in_first_screen(page, "#stop-button")
        assert in_first_screen(page, "#train-status")
        assert in_first_screen(page, "#loss-plot", whole=False), "the charts should start on the first screen"
        assert not in_first_screen(page, "#lr-dropdown", whole=False), "the knobs come after the charts on a phone"
        main, knobs = page.locator("#train-main").bounding_box(), page.locator("#train-knobs").bounding_box()
        board = page.locator("#runs-table").bounding_box()
        assert main["y"] < board["y"] < knobs["y"], "the runs board sits with the charts, before the knobs"
        shot(page, "runs_phone-first-screen")

        page.locator("#to-knobs-link a").tap()
        expect(page.locator("#lr-dropdown")).to_be_in_viewport()
        expect(page.locator("#model-dropdown")).to_be_in_viewport()
        shot(page, "runs_phone-knobs")
        page.locator("#to-train-link a").tap()
        expect(page.locator("#train-button")).to_be_in_viewport()
    finally:
        context.close()
