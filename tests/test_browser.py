"""The lab as a student sees it: headless Chromium (Playwright) against `python lab_app.py`.

Each test is a new student: a fresh browser context (own localStorage, so own client id and runs),
with camera permission and Chromium's fake camera. Every test leaves a full-page screenshot of its
end state in artifacts/screenshots/<test name>.png (look at them: they show what a student sees).

Playwright drives Debian's Chromium at /usr/bin/chromium (override with $CHROMIUM); it never
downloads a browser. Waits are explicit conditions with generous timeouts; the short pauses in the
polling loops only pace the sampling and never decide a result.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "screenshots"
DIGIT_3 = ROOT / "sample_data" / "examples" / "digit_3.png"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
TRAIN_TIMEOUT_MS = 120_000  # a default run takes ~5 s on a laptop CPU (longer if queued behind another job)
UI_TIMEOUT_MS = 20_000

sync_api.expect.set_options(timeout=UI_TIMEOUT_MS)
pytestmark = [
    pytest.mark.browser,
    # Skipped on a laptop without Chromium; in CI (.ci/run installs it) a missing browser must fail.
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason=f"no Chromium at {CHROMIUM}"),
]

STATUS = "#train-status [data-testid=markdown]"  # the status text, without Gradio's progress overlay
LABEL_VALUE = "#prediction-label [data-testid=label-output-value]"  # gr.Label's top class
TIMING = "#prediction-time [data-testid=markdown]"  # "3 in 21.1 ms", or a warning
# Plotted points per chart: every trace's length, as plotly decoded it (figures arrive as typed arrays).
POINTS_JS = """sel => {
    const el = document.querySelector(sel + ' .js-plotly-plot');
    if (!el || !el._fullData) return -1;
    return el._fullData.reduce((n, t) => n + (t._length || 0), 0);
}"""


# -- fixtures (the `browser` fixture, one Chromium per test module, is in conftest.py) ----------
@pytest.fixture
def page(browser, app, request):
    """A new student: fresh context (camera allowed), the lab open and its load events finished."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"],
                                  base_url=app.url)
    context.set_default_timeout(UI_TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    open_lab(pg)
    try:
        yield pg
        assert not errors, f"uncaught errors in the page: {errors}"
    finally:
        try:
            shot(pg, request.node.name)
        finally:
            context.close()


# -- helpers ------------------------------------------------------------------------------------
def shot(page, name: str) -> Path:
    try:  # let finished progress overlays fade out (a CSS transition) so the picture shows the real page
        page.wait_for_function("""() => [...document.querySelectorAll('[data-testid=status-tracker].hide')]
            .every(t => getComputedStyle(t).opacity === '0')""", timeout=3000)
    except sync_api.Error:
        pass  # only the picture's looks depend on it
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_loaded(page) -> None:
    """Wait until the page's load events (re-attach, model info, data summary) have answered.

    Clicking Train before the re-attach answers would let its reply overwrite the new job's status.
    """
    page.wait_for_selector("#train-button")
    page.get_by_text(re.compile(r"^mlp: ")).wait_for()  # the model-info load has answered
    wait_idle(page)  # and no load is pending any more


def wait_idle(page) -> None:
    """No event is pending: every Gradio progress overlay is hidden."""
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid=status-tracker]')]
        .every(t => t.classList.contains('hide'))""")


def open_lab(page) -> None:
    page.goto("/")
    wait_loaded(page)


def status(page) -> str:
    return page.locator(STATUS).inner_text().strip()


def wait_status(page, pattern: str, timeout: float = UI_TIMEOUT_MS, unlike: str | None = None) -> str:
    """Wait until the status line matches `pattern` (and, given `unlike`, is no longer that text)."""
    # Sampled on a timer, not on animation frames: a page busy drawing charts can starve those.
    page.wait_for_function(
        """([sel, pat, old]) => { const t = document.querySelector(sel)?.innerText || '';
            return new RegExp(pat).test(t) && (old === null || t.trim() !== old); }""",
        arg=[STATUS, pattern, unlike], timeout=timeout, polling=200)
    return status(page)


def points(page) -> tuple[int, int]:
    """(points on the loss chart, points on the accuracy chart)."""
    return page.evaluate(POINTS_JS, "#loss-plot"), page.evaluate(POINTS_JS, "#accuracy-plot")


def wait_points(page, at_least: int = 1, timeout: float = UI_TIMEOUT_MS) -> tuple[int, int]:
    page.wait_for_function(f"""() => {{ const n = {POINTS_JS};
        return n('#loss-plot') >= {at_least} && n('#accuracy-plot') >= {at_least}; }}""",
                           timeout=timeout, polling=200)
    return points(page)


def set_epochs(page, epochs: int) -> None:
    box = page.locator("#epochs-slider input[type=number]")
    box.fill(str(epochs))
    box.press("Enter")
    sync_api.expect(page.locator("#epochs-slider input[type=range]")).to_have_value(str(epochs))


def start_training(page, epochs: int | None = None) -> None:
    if epochs is not None:
        set_epochs(page, epochs)
    before = status(page)
    page.click("#train-button")
    # A short job can be done before the first look: any new line counts, the last run's "Done" does not.
    wait_status(page, r"Queued|Preparing|Training|Done", unlike=before)


def train_default_run(page) -> str:
    """Train with the default settings until done; returns the final status line."""
    start_training(page)
    return wait_status(page, r"Done", timeout=TRAIN_TIMEOUT_MS)


def open_try(page, source: str | None = None) -> None:
    page.get_by_role("tab", name="Try", exact=True).click()
    sync_api.expect(page.locator("#run-dropdown input")).not_to_have_value("", timeout=UI_TIMEOUT_MS)
    if source:
        page.get_by_role("tab", name=source, exact=True).click()


def upload(page, path) -> None:
    """Give the Try tab's upload a file (clearing the previous one first, as a student would)."""
    clear = page.locator("#try-upload button[aria-label=Clear]")
    if clear.count():
        clear.click()
    page.set_input_files("#try-upload input[type=file]", str(path))


def predicted(page, timeout: float = UI_TIMEOUT_MS) -> str:
    page.wait_for_selector(LABEL_VALUE, timeout=timeout)
    return page.locator(LABEL_VALUE).inner_text().strip()


# -- tests --------------------------------------------------------------------------------------
def test_train_shows_live_curves_and_stops(page, app):
    for elem_id in ("dataset-dropdown", "model-dropdown", "lr-dropdown", "batch-slider", "epochs-slider",
                    "train-button", "stop-button", "train-status", "loss-plot", "accuracy-plot"):
        sync_api.expect(page.locator(f"#{elem_id}")).to_be_visible()
    assert status(page) == "Press Train to start."
    # plotly loads lazily: the first page of a fresh server can show the charts a moment later
    page.wait_for_function(f"() => {{ const n = {POINTS_JS}; return n('#loss-plot') >= 0 && n('#accuracy-plot') >= 0; }}",
                           polling=200)
    assert points(page) == (0, 0), "a new student should see empty charts"

    start_training(page, epochs=60)  # ~15 s on a laptop CPU: long enough to watch and to stop
    loss_seen, acc_seen, lines = [], [], []
    deadline = time.time() + TRAIN_TIMEOUT_MS / 1000
    while time.time() < deadline:
        line, (loss_n, acc_n) = status(page), points(page)
        if "Training" in line:
            lines.append(line)
            if loss_n > 0 and (not loss_seen or loss_n != loss_seen[-1]):
                loss_seen.append(loss_n)
            if acc_n > 0 and (not acc_seen or acc_n != acc_seen[-1]):
                acc_seen.append(acc_n)
        elif lines:  # training ended before we saw enough
            break
        if len(loss_seen) >= 3 and len(acc_seen) >= 3 and any("images/s" in s for s in lines):
            break
        page.wait_for_timeout(200)
    shot(page, "test_train_shows_live_curves_and_stops-training")
    assert len(loss_seen) >= 3 and len(acc_seen) >= 3, (
        f"charts did not grow while training: loss {loss_seen}, accuracy {acc_seen}; last status {status(page)!r}")
    assert loss_seen == sorted(loss_seen) and acc_seen == sorted(acc_seen), (loss_seen, acc_seen)
    assert any(re.search(r"epoch [\d.]+ of 60", s) and "images/s" in s for s in lines), lines[-5:]

    page.click("#stop-button")
    line = wait_status(page, r"Stopped", timeout=10_000)
    assert "kept" in line, line
    after = points(page)
    assert after[0] >= loss_seen[-1] and after[1] >= acc_seen[-1], (after, loss_seen[-1], acc_seen[-1])
    # The curves end as the saved partial run: every point it kept is on the charts (and the status stays).
    import pandas as pd

    newest = max((p for p in app.runs_dir.iterdir() if (p / "metrics.csv").exists()), key=lambda p: p.stat().st_mtime)
    df = pd.read_csv(newest / "metrics.csv")
    kept = [int(df[m].notna().sum() + df.get(f"val_{m}", pd.Series(dtype=float)).notna().sum())
            for m in ("loss", "accuracy")]
    page.wait_for_function(f"() => {{ const n = {POINTS_JS}; return n('#loss-plot') === {kept[0]} "
                           f"&& n('#accuracy-plot') === {kept[1]}; }}", polling=200)
    assert "Stopped" in status(page)


def test_reload_reattaches_to_the_run(page):
    start_training(page, epochs=60)
    wait_status(page, r"Training", timeout=TRAIN_TIMEOUT_MS)
    before = wait_points(page, at_least=2, timeout=TRAIN_TIMEOUT_MS)  # training speed, not page speed

    page.reload()  # mid-run: the page finds the job again from the browser's stored session
    wait_loaded(page)
    live = wait_points(page, at_least=min(before))
    if "Training" in status(page):  # still running: the re-attached page keeps following it
        wait_points(page, at_least=min(live) + 1, timeout=TRAIN_TIMEOUT_MS)
    page.click("#stop-button")
    wait_status(page, r"Stopped|Done", timeout=15_000)
    final = points(page)
    assert min(final) > 0

    page.reload()  # after the run: the same curve again, without pressing Train
    wait_loaded(page)
    page.wait_for_function(f"() => {{ const n = {POINTS_JS}; return n('#loss-plot') === {final[0]} "
                           f"&& n('#accuracy-plot') === {final[1]}; }}", polling=200)
    assert re.search(r"Stopped|Done", status(page)), status(page)
    # the knobs come back with the curve: the page shows the settings that made it
    sync_api.expect(page.locator("#epochs-slider input[type=number]")).to_have_value("60")


def test_a_link_wins_over_the_last_run_and_the_share_link_survives_reload(page):
    train_default_run(page)
    share = page.locator("#share-link")
    sync_api.expect(share).to_contain_text("Link to these settings")
    # a returning student opens a shared link: its settings fill the controls, and the status says so
    page.goto("/?model=small_cnn&epochs=7")
    page.get_by_text(re.compile(r"^small_cnn: ")).wait_for()
    wait_idle(page)
    sync_api.expect(page.locator("#model-dropdown input")).to_have_value("small_cnn")
    sync_api.expect(page.locator("#epochs-slider input[type=number]")).to_have_value("7")
    line = status(page)
    assert "Settings loaded from the link" in line and "replaced" in line, line
    assert "Done" in line, line  # the last run is still shown, under the link's note
    sync_api.expect(share).to_contain_text("last run's settings")
    shot(page, "test_a_link_wins_over_the_last_run_and_the_share_link_survives_reload-link")

    page.goto("/")  # reload without the query: the last run's settings and its share link come back
    wait_loaded(page)
    sync_api.expect(page.locator("#model-dropdown input")).to_have_value("mlp")
    sync_api.expect(share).to_contain_text("Link to these settings")
    href = share.locator("a").get_attribute("href")
    assert "model=mlp" in href, href
    assert "link" not in status(page), status(page)


def test_a_shared_link_fills_in_the_settings(page):
    page.goto("/?model=small_cnn&epochs=7&batch_size=64")
    page.get_by_text(re.compile(r"^small_cnn: ")).wait_for()
    wait_idle(page)
    sync_api.expect(page.locator("#epochs-slider input[type=number]")).to_have_value("7")
    sync_api.expect(page.locator("#batch-slider input[type=number]")).to_have_value("64")
    assert "loaded from the link" in status(page)
    page.goto("/?batch_size=3.7")  # a hand-edited link with a value no slider allows
    wait_status(page, "not used")
    assert "whole number" in status(page)


def test_upload_predicts_and_rejects_non_images(page, tmp_path):
    done = train_default_run(page)
    open_try(page, "Upload")

    upload(page, DIGIT_3)
    label = predicted(page)
    assert label in [str(d) for d in range(10)], label
    assert label == "3", f"digit_3.png predicted as {label!r} by a run that says: {done}"
    sync_api.expect(page.locator(TIMING)).to_contain_text("ms")

    fake = tmp_path / "not_a_picture.png"
    fake.write_text("this is a text file wearing a .png name\n")
    upload(page, fake)
    sync_api.expect(page.locator(TIMING)).to_contain_text("not an image")
    sync_api.expect(page.locator(LABEL_VALUE)).to_have_count(0)  # the old prediction is not left up

    upload(page, DIGIT_3)  # and the page still works
    sync_api.expect(page.locator(LABEL_VALUE)).to_have_text("3")


def test_sketch_predicts(page):
    train_default_run(page)
    open_try(page, "Draw")
    pad = page.locator("#try-sketch canvas").first
    pad.wait_for()
    # no tool clicked first: the Try tab selects the brush (Gradio's pad starts with none)
    box = pad.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 40, cy - 70)  # a "3": top bar, middle, bottom bar
    page.mouse.down()
    for x, y in [(cx + 40, cy - 70), (cx + 40, cy), (cx - 20, cy), (cx + 40, cy), (cx + 40, cy + 70),
                 (cx - 40, cy + 70)]:
        page.mouse.move(x, y, steps=10)
    page.mouse.up()
    assert predicted(page) in [str(d) for d in range(10)]
    sync_api.expect(page.locator(TIMING)).to_contain_text("ms")


def test_webcam_streams_predictions(page):
    train_default_run(page)
    open_try(page, "Webcam")
    cam = page.locator("#try-webcam")
    cam.get_by_text("Click to Access Webcam").click()
    record = cam.locator("button[aria-label='capture photo']")  # the Record / Stop toggle under the video
    sync_api.expect(record).to_contain_text("Record")
    record.click()
    sync_api.expect(record).to_contain_text("Stop")

    assert predicted(page) in [str(d) for d in range(10)]
    # Frames keep coming: the timing line changes with each new prediction.
    timings: list[str] = []
    deadline = time.time() + 20
    while len(timings) < 3 and time.time() < deadline:
        t = page.locator(TIMING).inner_text().strip()
        if t and (not timings or t != timings[-1]):
            timings.append(t)
        page.wait_for_timeout(100)
    shot(page, "test_webcam_streams_predictions-streaming")
    assert len(timings) >= 3, f"only {timings} arrived from the webcam stream in 20 s"
    assert all(re.fullmatch(r"\d+ in [\d.]+ ms", t) for t in timings), timings

    record.click()  # stop streaming: the predictions stop coming, and the rest of the page still answers
    sync_api.expect(record).to_contain_text("Record")
    last, since, deadline = None, time.time(), time.time() + 15
    while time.time() - since < 2 and time.time() < deadline:
        t = page.locator(TIMING).inner_text()
        if t != last:
            last, since = t, time.time()
        page.wait_for_timeout(100)
    assert time.time() - since >= 2, "predictions kept arriving after the webcam was stopped"
    page.get_by_role("tab", name="Upload", exact=True).click()
    upload(page, DIGIT_3)
    sync_api.expect(page.locator(LABEL_VALUE)).to_have_text("3")
    sync_api.expect(page.locator(TIMING)).to_contain_text(re.compile(r"^\s*3 in [\d.]+ ms\s*$"))


def test_data_tab_other_samples_changes_each_time(page):
    page.get_by_role("tab", name="Data", exact=True).click()
    grid = page.locator("#data-grid img")
    sync_api.expect(grid).to_be_visible()
    sources = [grid.get_attribute("src")]
    for _ in range(3):  # every click shows new samples, not just the first one
        page.get_by_role("button", name="Other samples").click()
        page.wait_for_function("([sel, old]) => { const i = document.querySelector(sel); "
                               "return i && i.getAttribute('src') && !old.includes(i.getAttribute('src')); }",
                               arg=["#data-grid img", sources])
        sources.append(grid.get_attribute("src"))
    assert len(set(sources)) == 4, sources
    wait_idle(page)


def test_a_link_learning_rate_off_the_ladder_is_shown_and_trained_exactly(page, app):
    import json

    page.goto("/?learning_rate=0.0005&epochs=2")
    wait_loaded(page)
    lr = page.locator("#lr-dropdown input")
    sync_api.expect(lr).to_have_value(re.compile(r"^0\.0005\b"))  # the value itself, marked as off the ladder
    before = {p.name for p in app.runs_dir.iterdir()}
    train_default_run(page)
    new = [p for p in app.runs_dir.iterdir() if p.name not in before and (p / "hparams.json").exists()]
    assert len(new) == 1, new
    saved = json.loads((new[0] / "hparams.json").read_text())
    assert saved["learning_rate"] == 0.0005 and saved["epochs"] == 2, saved
    # the ladder offers exact values, shown as students read them
    lr.click()
    options = [t.strip() for t in page.locator("ul[role=listbox] li").all_inner_texts()]
    assert "0.003" in options and "0.00001" in options and not any("e-" in o for o in options), options


def test_train_waits_for_the_pages_settings_before_it_can_be_pressed(page, app):
    """A student who pressed Train as a link opened trained the defaults (1 press in 6 in a run-through):
    the button is off in the page as served, and on once the load put the link's settings in."""
    import json
    import urllib.request

    with urllib.request.urlopen(app.url + "config", timeout=10) as r:
        config = json.load(r)
    (button,) = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "train-button"]
    assert button["props"]["interactive"] is False
    page.goto("/?epochs=3&batch_size=16")
    sync_api.expect(page.locator("#train-button")).to_be_enabled()
    # read at once, no waiting: by the time Train can be pressed the link's settings are in the controls
    assert page.locator("#epochs-slider input[type=number]").input_value() == "3"
    assert page.locator("#batch-slider input[type=number]").input_value() == "16"
