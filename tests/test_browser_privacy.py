"""Students' work is kept and private, as students see it in Chromium (issue 9).

Two browser contexts are two students on one link; a restart of the app on the same port and
runs folder (as after a crash, or the next lesson) must leave every student's runs on their page.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import LaunchedApp
from tests.test_browser import (DIGIT_3, TRAIN_TIMEOUT_MS, UI_TIMEOUT_MS, open_lab,
                                open_try, predicted, shot, sync_api, train_default_run, upload, wait_loaded)

pytestmark = pytest.mark.browser


def student(browser, url):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=url)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "localStorage" in m.text else None)
    open_lab(page)
    return context, page, errors


def run_titles(page) -> list[str]:
    page.get_by_role("tab", name="Try", exact=True).click()
    page.locator("#run-dropdown input").click()
    titles = page.locator("ul[role=listbox] li").all_inner_texts()
    page.keyboard.press("Escape")
    return [t.strip() for t in titles if t.strip()]


def test_two_students_on_one_link_see_only_their_own_runs(browser, app):
    alice_ctx, alice, alice_errors = student(browser, app.url)
    bob_ctx, bob, bob_errors = student(browser, app.url)
    try:
        train_default_run(alice)
        open_try(alice)
        mine = run_titles(alice)
        assert mine, "alice sees her run"
        bob.reload()
        wait_loaded(bob)
        theirs = run_titles(bob)
        assert not set(mine) & set(theirs), (mine, theirs)
        assert "Press Train to start" in bob.locator("#train-status").inner_text()
        shot(bob, "privacy_bob_sees_nothing_of_alice")
        assert not alice_errors and not bob_errors, (alice_errors, bob_errors)
    finally:
        alice_ctx.close()
        bob_ctx.close()


def reload_after_restart(page, tries: int = 3) -> None:
    """Reload once the server is back. Gradio's page may itself be navigating when it lost the server,
    which aborts a reload (net::ERR_ABORTED): then wait for that navigation and reload again."""
    from playwright.sync_api import Error

    for attempt in range(tries):
        try:
            page.reload()
            return
        except Error as e:
            if "ERR_ABORTED" not in str(e) or attempt == tries - 1:
                raise
            page.wait_for_load_state()


def test_a_restart_keeps_every_students_runs_on_their_page(browser, tmp_path):
    runs = tmp_path / "runs"
    first = LaunchedApp(runs)
    context = None
    try:
        first.wait_ready()
        context, page, errors = student(browser, first.url)
        train_default_run(page)
        open_try(page)
        before = run_titles(page)
        assert len(before) == 1, before
    finally:
        first.close()
    second = LaunchedApp(runs, port=first.port)  # same address: the browser's stored id must still read
    try:
        second.wait_ready()
        reload_after_restart(page)
        wait_loaded(page)
        sync_api.expect(page.locator("#train-status")).to_contain_text(re.compile(r"Your last run|Done"),
                                                                     timeout=TRAIN_TIMEOUT_MS)
        open_try(page, "Upload")
        assert run_titles(page) == before
        upload(page, DIGIT_3)
        assert predicted(page) == "3"
        shot(page, "privacy_runs_after_restart")
        assert not errors, errors
    finally:
        second.close()
        if context is not None:
            context.close()


def test_a_link_to_a_classmates_own_dataset_says_it_is_not_yours(browser, app, tmp_path):
    from gradio_client import Client, handle_file

    from tests.zips import pets_zip

    classmate = Client(app.url, verbose=False)
    theirs = classmate.predict(handle_file(str(pets_zip(tmp_path / "p.zip"))), "pets", api_name="/add_dataset")
    context, page, errors = student(browser, app.url)
    try:
        page.goto(f"/?dataset={theirs['dataset']}&epochs=3")
        wait_loaded(page)
        sync_api.expect(page.locator("#train-status")).to_contain_text("not yours")
        sync_api.expect(page.locator("#dataset-dropdown input")).to_have_value("digits")
        sync_api.expect(page.locator("#epochs-slider input[type=number]")).to_have_value("3")
        assert theirs["dataset"] not in page.locator("#train-status").inner_text()
        assert not errors, errors
    finally:
        context.close()
