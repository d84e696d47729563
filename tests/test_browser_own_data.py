"""A student brings their own pictures, in headless Chromium: upload a zip of class folders, preview
augmentation, train a pretrained-backbone model and a small CNN on them, and try both on the webcam.

The pictures are made by the test (red "cats", blue "dogs"); the backbone is built without its
ImageNet weights (VISION_LAB_PRETRAINED=0: no test downloads), so only the path is checked, not
how well transfer learning works. Screenshots go to artifacts/screenshots/ like test_browser.py's.
"""

from __future__ import annotations

import re

import pytest

from tests.test_browser import (  # noqa: F401  (page is a fixture; `browser` is conftest's)
    TRAIN_TIMEOUT_MS, UI_TIMEOUT_MS, page, predicted, set_epochs, shot, start_training, sync_api,
    wait_idle, wait_status,
)
from tests.zips import pets_zip

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a Gradio dropdown the way a student does: open it, click the option."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=re.compile(re.escape(option))).first.click()
    wait_idle(page)


def add_zip(page, path, name: str) -> str:
    """Upload a zip in the Data tab; returns the status text."""
    page.get_by_role("tab", name="Data", exact=True).click()
    page.set_input_files("#data-upload input[type=file]", str(path))
    page.locator("#data-upload-name textarea, #data-upload-name input").first.fill(name)
    page.click("#data-upload-button")
    page.wait_for_function("() => /Added|⚠️/.test(document.querySelector('#data-upload-status')?.innerText || '')",
                           timeout=60_000)
    return page.locator("#data-upload-status").inner_text()


def webcam_label(page) -> str:
    """Start the Try tab's webcam stream and return the first prediction; stop the stream again."""
    page.get_by_role("tab", name="Try", exact=True).click()
    page.get_by_role("tab", name="Webcam", exact=True).click()
    cam = page.locator("#try-webcam")
    access = cam.get_by_text("Click to Access Webcam")
    if access.count():
        access.click()
    record = cam.locator("button[aria-label='capture photo']")
    sync_api.expect(record).to_contain_text("Record")
    record.click()
    label = predicted(page)
    record.click()
    sync_api.expect(record).to_contain_text("Record")
    return label


def train_until_done(page, model: str, epochs: int) -> str:
    page.get_by_role("tab", name="Train", exact=True).click()
    choose(page, "model-dropdown", model)
    page.get_by_text(re.compile(rf"^{model}: ")).wait_for()
    start_training(page, epochs=epochs)
    return wait_status(page, r"Done|Failed|Stopped", timeout=TRAIN_TIMEOUT_MS)


def test_own_zip_preview_train_transfer_and_cnn_then_webcam(page, tmp_path):
    z = pets_zip(tmp_path / "pets.zip", n_cats=16, n_dogs=16, extra=[("dogs/broken.jpg", b"not a jpeg")])
    text = add_zip(page, z, "pets")
    assert "Added pets" in text and "32 pictures in 2 classes" in text, text
    assert "Skipped 1 file" in text, text
    # The Data tab now shows the new dataset: its summary and a table of the two classes.
    sync_api.expect(page.locator("#data-summary")).to_contain_text("pets (yours")
    sync_api.expect(page.locator("#data-counts")).to_contain_text("cats")
    sync_api.expect(page.locator("#data-counts")).to_contain_text("dogs")
    shot(page, "own_data-uploaded")

    # The Data tab and the Train tab say which size and colour were chosen for these pictures, and why.
    sync_api.expect(page.locator("#data-summary")).to_contain_text("Pictures used at 64×64, in colour")
    page.get_by_role("tab", name="Train", exact=True).click()
    sync_api.expect(page.locator("#dataset-dropdown input")).to_have_value(re.compile(r"^pets \(yours"))
    sync_api.expect(page.locator("#model-info")).to_contain_text("parameters")
    sync_api.expect(page.locator("#model-info")).to_contain_text("64×64×3 images")
    sync_api.expect(page.locator("#model-info")).to_contain_text("kept near their size at 64×64")

    # Preview: flip + rotation on the student's own pictures, before training. The knobs column links to
    # the augmentation settings, full width under the charts (far down once a run's results are shown).
    page.locator("#more-knobs").get_by_role("link", name="Augmentation").click()
    sync_api.expect(page.locator("#augment-accordion")).to_be_in_viewport()
    page.get_by_text("Augmentation (random changes", exact=False).click()
    page.locator("#hp-augment_flip input[type=checkbox]").check()
    box = page.locator("#hp-augment_rotation input[type=number]")
    box.fill("0.1")
    box.press("Enter")
    page.click("#augment-preview-button")
    sync_api.expect(page.locator("#augment-preview img")).to_be_visible(timeout=60_000)
    sync_api.expect(page.locator("#augment-preview-text")).to_contain_text("mirrored")
    shot(page, "own_data-preview")
    # Switch augmentation off again so the frozen backbone's features can be cached.
    page.locator("#hp-augment_flip input[type=checkbox]").uncheck()
    box.fill("0")
    box.press("Enter")

    batch = page.locator("#batch-slider input[type=number]")  # 32 pictures: smaller batches, several steps
    batch.fill("8")
    batch.press("Enter")
    done = train_until_done(page, "mobilenet_v3_small", epochs=3)
    assert done.startswith("✅") or "Done" in done, done
    assert webcam_label(page) in ("cats", "dogs")
    shot(page, "own_data-mobilenet-webcam")

    done = train_until_done(page, "small_cnn", epochs=4)
    assert "Done" in done, done
    sync_api.expect(page.locator("#run-dropdown input")).to_have_value(re.compile("small_cnn on pets · "), timeout=UI_TIMEOUT_MS)
    assert webcam_label(page) in ("cats", "dogs")


def test_a_broken_zip_gets_a_clear_message_and_nothing_changes(page, tmp_path):
    bad = tmp_path / "holiday.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    text = add_zip(page, bad, "")
    assert "not a zip archive" in text and "Nothing was added" in text, text
    page.get_by_role("tab", name="Train", exact=True).click()
    sync_api.expect(page.locator("#dataset-dropdown input")).to_have_value("digits")


def test_several_picture_files_per_class_then_train(page, tmp_path):
    from tests.test_browser_capture import add_class, open_capture
    from tests.zips import BLUE, RED, picture

    def files(colour, n, tag):
        paths = []
        for i in range(n):
            paths.append(tmp_path / f"{tag}_{i}.png")
            paths[-1].write_bytes(picture(colour, (48, 40), seed=i))
        return paths

    open_capture(page)
    for name, colour in (("red things", RED), ("blue things", BLUE)):
        add_class(page, name)
        extra = [tmp_path / "oops.png"] if colour == BLUE else []
        for p in extra:
            p.write_text("a text file, not a picture")
        page.set_input_files("#capture-files input[type=file]", [str(p) for p in files(colour, 8, name[:3]) + extra])
        sync_api.expect(page.locator("#capture-status")).to_contain_text(f"Added 8 pictures to {name}")
        wait_idle(page)
    sync_api.expect(page.locator("#capture-status")).to_contain_text("Skipped 1")
    page.locator("#capture-use").click()
    sync_api.expect(page.locator("#capture-result")).to_contain_text("Saved")
    page.get_by_role("tab", name="Train", exact=True).click()
    sync_api.expect(page.locator("#dataset-dropdown input")).to_have_value(re.compile(r"^my webcam \(yours"))
    batch = page.locator("#batch-slider input[type=number]")
    batch.fill("4")
    batch.press("Enter")
    start_training(page, epochs=5)
    done = wait_status(page, r"Done|Failed|Stopped", timeout=TRAIN_TIMEOUT_MS)
    assert "Done" in done and "100.0%" in done, done  # red vs blue: every validation picture right
