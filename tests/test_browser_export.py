"""Taking a run home in a browser (issue 15): under the runs board a student picks a run and a format,
presses Prepare, sees progress, and downloads a zip with the model, its model card and classify.py.
Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import re
import zipfile

import pytest

from tests.test_browser_runs import audit
from tests.test_browser import UI_TIMEOUT_MS, page, set_epochs, shot, sync_api, train_default_run  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = sync_api.expect
CONVERT_TIMEOUT_MS = 120_000


def download(page, fmt_label: str | None, tmp_path, name: str):
    """Choose the format (None: keep it), press Prepare, wait for the file and download it."""
    if fmt_label:
        page.locator("#runs-export-format input").click()
        page.get_by_role("option", name=fmt_label).click()
        expect(page.locator("#runs-export-file a[download]")).to_have_count(0)  # the old file is cleared
    page.click("#runs-export")
    link = page.locator("#runs-export-file a[download]").first
    expect(link).to_be_visible(timeout=CONVERT_TIMEOUT_MS)
    with page.expect_download() as info:
        link.click()
    path = tmp_path / name
    info.value.save_as(path)
    return info.value.suggested_filename, path


def test_a_student_downloads_their_run_as_keras_and_as_int8_tflite_with_a_card(page, tmp_path):  # noqa: F811
    set_epochs(page, 1)
    train_default_run(page)
    chosen = page.locator("#runs-export-choice input")
    expect(chosen).to_have_value(re.compile(r"^mlp · lr 0\.003"), timeout=UI_TIMEOUT_MS)  # the newest run, ready

    name, path = download(page, None, tmp_path, "keras.zip")  # .keras is the default
    assert re.fullmatch(r"mlp-digits-\d{8}-\d{4}-keras\.zip", name), name
    with zipfile.ZipFile(path) as z:
        assert {"model.keras", "MODEL_CARD.md", "classify.py", "example.png"} <= set(z.namelist())
        assert "## How well it does" in z.read("MODEL_CARD.md").decode()

    name, path = download(page, "TFLite, int8 quantized (microcontrollers, Coral)", tmp_path, "int8.zip")
    assert name.endswith("-tflite_int8.zip"), name
    with zipfile.ZipFile(path) as z:
        assert "model_int8.tflite" in z.namelist()
        assert "int8 model's input:** uint8" in z.read("MODEL_CARD.md").decode()
    expect(page.locator("#runs-export-note")).to_be_hidden()
    audit(page, "Train-with-a-download")  # the download control and its file pass axe-core too
    shot(page, "export-download")
