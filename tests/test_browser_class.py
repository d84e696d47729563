"""A lesson, as the teacher and the students see it in Chromium (issue 16).

The app starts with a teacher key; students are separate browser contexts that pick nicknames and
train tiny jobs; the teacher opens the Class tab on the `?teacher` link, types the key, watches
the board, pushes a preset, locks the model list, stops a job and clears the class. One launched
app for the module. Screenshots go to artifacts/screenshots/ (class_*.png).
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import running_app
from tests.test_browser import (TRAIN_TIMEOUT_MS, UI_TIMEOUT_MS, set_epochs, shot, start_training, status,
                                sync_api, wait_loaded, wait_status)

pytestmark = pytest.mark.browser
KEY = "heron-42-slate"


@pytest.fixture(scope="module")
def lesson(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("lesson") / "runs", args=("--teacher-key", KEY)) as launched:
        yield launched


def person(browser, url, path="/"):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=url)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path)
    wait_loaded(page)
    return context, page, errors


def nickname(page, name: str) -> None:
    page.locator("#nickname textarea, #nickname input").first.fill(name)
    page.click("#nickname-save")
    sync_api.expect(page.locator("#nickname-said")).to_contain_text(f"as {name}")


def open_console(page) -> None:
    page.get_by_role("tab", name="Class", exact=True).click()
    page.locator("#teacher-key input").fill(KEY)
    page.click("#teacher-open")
    sync_api.expect(page.locator("#class-message")).to_contain_text("console is open")
    sync_api.expect(page.locator("#class-board table")).to_be_visible()
    sync_api.expect(page.locator("#teacher-key-row")).to_be_hidden()  # the key's work is done: out of the way


def board_row(page, name: str):
    return page.locator("#class-board tbody tr", has=page.locator("td:first-child", has_text=name))


def test_the_class_tab_is_hidden_from_students_and_inert_without_the_key(browser, lesson):
    ctx, page, errors = person(browser, lesson.url)
    try:
        sync_api.expect(page.get_by_role("tab", name="Class", exact=True)).to_have_count(0)
        page.goto("/?teacher")
        wait_loaded(page)
        page.get_by_role("tab", name="Class", exact=True).click()
        sync_api.expect(page.locator("#class-console")).to_be_hidden()
        page.locator("#teacher-key input").fill("not-the-key")
        page.click("#teacher-open")
        sync_api.expect(page.locator("#class-message")).to_contain_text("not the teacher key")
        sync_api.expect(page.locator("#class-console")).to_be_hidden()
        assert "not-the-key" not in page.url and KEY not in page.url
        assert not errors, errors
    finally:
        ctx.close()


def test_a_lesson_board_preset_lock_stop_and_clear(browser, lesson):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    teacher_ctx, teacher, teacher_errors = person(browser, lesson.url, "/?teacher")
    ada_ctx, ada, ada_errors = person(browser, lesson.url)
    bo_ctx, bo, bo_errors = person(browser, lesson.url)
    try:
        open_console(teacher)
        nickname(ada, "Ada")
        nickname(bo, "Bo")
        sync_api.expect(board_row(teacher, "Ada")).to_contain_text("not trained yet")  # live: joined, not trained

        # Ada trains a tiny job: the board shows it, then her best run
        set_epochs(ada, 1)
        start_training(ada)
        wait_status(ada, r"Done", timeout=TRAIN_TIMEOUT_MS)
        sync_api.expect(board_row(teacher, "Ada")).to_contain_text("done", timeout=10_000)
        sync_api.expect(board_row(teacher, "Ada")).to_contain_text(re.compile(r"mlp.*\d+\.\d%"))
        assert teacher.locator("#class-board").inner_text().count("Bo") == 1
        shot(teacher, "class_board_after_a_run")

        # a preset reaches Bo's Train tab within a few seconds
        teacher.locator("#class-preset textarea").fill('{"model": "small_cnn", "epochs": 3}')
        teacher.click("#class-push")
        sync_api.expect(teacher.locator("#class-message")).to_contain_text("Pushed to every student")
        sync_api.expect(bo.locator("#model-dropdown input")).to_have_value("small_cnn", timeout=15_000)
        sync_api.expect(bo.locator("#epochs-slider input[type=number]")).to_have_value("3")
        sync_api.expect(bo.locator("#teacher-note")).to_contain_text("starting point")

        # lock the models: Bo's control offers only those and says the teacher set them; the API refuses others
        teacher.locator("#class-lock-models label", has_text="mlp").first.click()
        teacher.locator("#class-lock-models label", has_text="small_cnn").click()
        teacher.click("#class-lock")
        sync_api.expect(teacher.locator("#class-message")).to_contain_text("Locked: Model (model): mlp, small_cnn")
        sync_api.expect(bo.locator("#teacher-note")).to_contain_text("Model (model): mlp, small_cnn", timeout=15_000)
        sync_api.expect(bo.locator("#model-dropdown")).to_contain_text("Set by your teacher: only mlp, small_cnn")
        bo.locator("#model-dropdown input").click()
        options = [t.replace("✓", "").strip() for t in bo.locator("ul[role=listbox] li").all_inner_texts() if t.strip()]
        bo.keyboard.press("Escape")
        assert options == ["mlp", "small_cnn"], options
        shot(bo, "class_student_sees_locks_and_preset")
        student_api = Client(lesson.url, verbose=False)
        with pytest.raises(AppError, match=r"teacher locked Model \(model\): mlp, small_cnn, not resnet"):
            student_api.predict({"model": "resnet", "epochs": 1}, api_name="/train")

        # Bo starts a long job (the preset's small_cnn, within the lock); the teacher stops it from the board
        start_training(bo, epochs=60)
        wait_status(bo, r"Training", timeout=TRAIN_TIMEOUT_MS)
        sync_api.expect(board_row(teacher, "Bo")).to_contain_text("running", timeout=10_000)
        teacher.locator("#class-stop-choice input").click()
        teacher.get_by_role("option", name=re.compile(r"^Bo · running")).click()
        teacher.click("#class-stop")
        sync_api.expect(teacher.locator("#class-message")).to_contain_text("Stopped Bo's job")
        line = wait_status(bo, r"Stopped", timeout=30_000)
        assert "stopped by the teacher" in line, line

        # project Ada's run full-screen, then close it (once Bo's partial run is listed too)
        sync_api.expect(board_row(teacher, "Bo")).to_contain_text("stopped", timeout=10_000)
        teacher.locator("#class-project-choice input").click()
        sync_api.expect(teacher.get_by_role("option", name=re.compile(r"^Bo · "))).to_have_count(1)  # refreshed
        teacher.get_by_role("option", name=re.compile(r"^Ada · ")).click()
        teacher.click("#class-project")
        sync_api.expect(teacher.locator("#projector")).to_be_visible()
        sync_api.expect(teacher.locator("#projector-title")).to_contain_text("Ada")
        shot(teacher, "class_projector")
        teacher.click("#projector-close")
        sync_api.expect(teacher.locator("#projector")).to_be_hidden()

        # clear the class, after a confirmation
        teacher.click("#class-clear")
        sync_api.expect(teacher.locator("#class-confirm")).to_be_visible()
        teacher.click("#class-clear-yes")
        sync_api.expect(teacher.locator("#class-message")).to_contain_text("The class is cleared")
        assert not [p for p in lesson.runs_dir.iterdir() if not p.name.startswith(".")]
        sync_api.expect(board_row(teacher, "Ada")).to_contain_text("—")
        # Ada's open page learns it and drops her deleted run (no reload)
        sync_api.expect(ada.locator("#teacher-note")).to_contain_text("cleared the class", timeout=15_000)
        sync_api.expect(ada.locator("#runs-table")).to_contain_text("No runs yet", timeout=10_000)
        teacher.locator("#class-unlock").click()
        sync_api.expect(bo.locator("#teacher-note")).to_contain_text("starting point", timeout=15_000)
        shot(teacher, "class_cleared")
        assert not (teacher_errors or ada_errors or bo_errors), (teacher_errors, ada_errors, bo_errors)
        assert "Press Train" in status(ada) or "Done" in status(ada)
    finally:
        for ctx in (teacher_ctx, ada_ctx, bo_ctx):
            ctx.close()


def test_a_student_guessing_keys_shuts_new_consoles_but_not_the_teachers(browser, lesson):
    # Last in the module: afterwards no new console opens on this app for a minute.
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from lab.teacher_key import WRONG_TRIES

    teacher_ctx, teacher, errors = person(browser, lesson.url, "/?teacher")
    other_ctx = None
    try:
        open_console(teacher)
        rows = teacher.locator("#class-board tbody tr").count()
        other_ctx, other, _ = person(browser, lesson.url, "/?teacher")  # a teacher's page is not a student
        teacher.wait_for_timeout(3000)  # (the board refreshes every 2 s; paces the check only)
        assert teacher.locator("#class-board tbody tr").count() == rows
        guesser = Client(lesson.url, verbose=False)
        said = []  # (the module's first test typed a wrong key too: it counts)
        for i in range(WRONG_TRIES + 1):
            with pytest.raises(AppError) as refused:
                guesser.predict(f"heron-{i}-slate", api_name="/class_board")
            said.append(str(refused.value))
            if "too many" in said[-1]:
                break
        assert "too many wrong teacher keys" in said[-1], said
        assert all("not the teacher key" in s for s in said[:-1]) and len(said) >= WRONG_TRIES - 1, said
        with pytest.raises(AppError, match="too many wrong teacher keys"):
            guesser.predict(KEY, api_name="/class_board")  # even the right key: the guessing must stop
        # a new console stays shut, with the reason
        other.get_by_role("tab", name="Class", exact=True).click()
        other.locator("#teacher-key input").fill(KEY)
        other.click("#teacher-open")
        sync_api.expect(other.locator("#class-message")).to_contain_text("too many wrong teacher keys")
        sync_api.expect(other.locator("#class-console")).to_be_hidden()
        # the console that was open keeps working: a preset still goes out
        teacher.locator("#class-preset textarea").fill('{"epochs": 2}')
        teacher.click("#class-push")
        sync_api.expect(teacher.locator("#class-message")).to_contain_text("Pushed to every student")
        assert not errors, errors
    finally:
        teacher_ctx.close()
        if other_ctx is not None:
            other_ctx.close()
