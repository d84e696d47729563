"""The evaluation panel in headless Chromium (issue 12): a student trains, reads the confusion matrix
and the per-class scores under the charts, chooses the worst cell and sees those very digits, most
confident first, each with the class it was taken for and how sure the model was. Screenshots go to
artifacts/screenshots/ like test_browser.py's.
"""

from __future__ import annotations

import re

import pytest

from tests.test_browser import (  # noqa: F401  (page is a fixture; `browser` is conftest's)
    page, shot, sync_api, train_default_run, wait_idle,
)
from tests.test_browser_a11y import audit, axe_source, report  # noqa: F401  (axe_source is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = sync_api.expect
CHART_JS = """sel => { const el = document.querySelector(sel + ' .js-plotly-plot');
    return el && el._fullData ? {type: el._fullData[0].type, shapes: (el.layout.shapes || []).map(s => s.y0)} : null; }"""


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a Gradio dropdown as a student does: open it, click the option."""
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id}").get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def test_the_panel_shows_the_matrix_the_scores_and_the_worst_cells_digits(page, axe_source):
    train_default_run(page)
    expect(page.locator("#evaluation")).to_be_visible()
    summary = page.locator("#evaluation-summary")
    expect(summary).to_contain_text(re.compile(r"Accuracy \d+\.\d% on \d+ validation pictures"))
    page.wait_for_function(f"() => ({CHART_JS})('#confusion-plot')?.type === 'heatmap'")
    assert 0.1 in page.evaluate(CHART_JS, "#accuracy-plot")["shapes"]  # the chance line: 1 in 10 digits
    expect(page.locator("#class-scores table tbody tr")).to_have_count(10)
    expect(page.locator("#class-scores table")).to_contain_text("recall")
    # At first: the run's most confident mistakes, with alt text and captions.
    pictures = page.locator("#mistakes img")
    expect(pictures.first).to_be_visible()
    assert 0 < pictures.count() <= 50
    # The worst cell, as the summary names it: "“8” taken for “1” (4 pictures)".
    worst = re.search(r"“(.+?)” taken for “(.+?)” \((\d+) pictures?\)", summary.inner_text())
    assert worst, summary.inner_text()
    true, said, count = worst.group(1), worst.group(2), int(worst.group(3))
    choose(page, "cell-true", true)
    choose(page, "cell-predicted", said)
    expect(page.locator("#cell-note")).to_contain_text(f"{count} picture")
    expect(page.locator("#cell-note")).to_contain_text(f"of “{true}” taken for “{said}”")
    shown = pictures.count()
    assert 1 <= shown <= count
    alts = [pictures.nth(i).get_attribute("alt") for i in range(shown)]
    assert all(f"A picture of “{true}” that the model took for “{said}”" in a for a in alts), alts
    captions = page.locator("#mistakes figcaption").all_inner_texts()
    sure = [int(re.search(r"(\d+)%", c).group(1)) for c in captions]
    assert all(c.startswith(f"said {said} · ") for c in captions) and sure == sorted(sure, reverse=True), captions
    box = pictures.first.bounding_box()
    assert box["width"] >= 90 and box["height"] >= 90  # the 8x8 digits are drawn big enough to see
    page.locator("#evaluation").scroll_into_view_if_needed()
    shot(page, "evaluation-worst-cell")
    page.locator("#evaluation").screenshot(path=str(shot.__globals__["SHOTS"] / "evaluation-panel.png"))
    found: dict = {}
    audit(page, axe_source, "Train-evaluation-cell", found)  # WCAG 2 A/AA: the panel, its pictures' alt text
    assert not found, "axe-core found critical or serious problems:\n" + report(found)
    # A diagonal cell holds right answers: the panel says so instead of showing nothing silently.
    choose(page, "cell-predicted", true)
    expect(page.locator("#cell-note")).to_contain_text("recognised correctly")
    expect(pictures).to_have_count(0)


def test_a_reload_shows_the_last_runs_evaluation_again(page):
    train_default_run(page)
    expect(page.locator("#evaluation-summary")).to_contain_text("Accuracy")
    page.reload()
    expect(page.locator("#evaluation")).to_be_visible()
    expect(page.locator("#evaluation-summary")).to_contain_text("Accuracy")
    expect(page.locator("#evaluation-run input")).not_to_have_value("")
