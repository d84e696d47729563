"""A student's unpacked class folders become a dataset: pictures decoded like Try-tab input, junk counted."""

from __future__ import annotations

import io

import numpy as np
import pytest

from lab import archive, image_folder
from lab.archive import ArchiveError
from lab.image_folder import choose_look, class_table, dataset_from_zip, import_zip, load_image_folder
from lab.images import ImageLook, prepare, read_image

from tests.zips import BLUE, RED, make_zip, pets_zip, picture


# --- decoding the pictures ---------------------------------------------------------------


def test_good_zip_becomes_a_dataset(tmp_path):
    zip_path = pets_zip(tmp_path / "pets.zip", 12, 11)
    work = tmp_path / "student"
    data = dataset_from_zip(zip_path, work, "pets")
    assert data.name == "pets" and data.class_names == ("cats", "dogs")
    # 12 cats 40-51 × 30 and 11 dogs 50 × 60-70: the median short side is 30, so 32×32, in colour
    assert data.x.shape == (23, 32, 32, 3) and data.x.dtype == np.uint8
    assert data.y.dtype == np.int64 and data.counts() == {"cats": 12, "dogs": 11}
    assert data.look == ImageLook(32, 32, 3, light_on_dark=False, fit_to_content=False)
    # Labels follow the pictures: red cats, blue dogs.
    mean = data.x.reshape(len(data.x), -1, 3).mean(axis=1)
    assert np.all((mean[:, 0] > 150) == (data.y == 0)) and np.all((mean[:, 2] > 150) == (data.y == 1))
    assert list(work.iterdir()) == []  # the unpacked files are gone; the dataset is in memory


def test_training_pictures_are_made_exactly_like_try_tab_input(tmp_path):
    folder = tmp_path / "pets"
    (folder / "cats").mkdir(parents=True)
    (folder / "dogs").mkdir()
    (folder / "cats" / "a.jpg").write_bytes(picture(RED, (173, 91), "JPEG"))
    (folder / "dogs" / "b.png").write_bytes(picture(BLUE, (64, 200), "PNG"))
    x, y, names, skipped = load_image_folder(folder, size=(48, 64))
    assert x.shape == (2, 48, 64, 3) and list(y) == [0, 1] and names == ["cats", "dogs"] and skipped == {}
    for i, path in enumerate([folder / "cats" / "a.jpg", folder / "dogs" / "b.png"]):
        expected = np.rint(prepare(read_image(path), ImageLook(48, 64, 3)) * 255).astype(np.uint8)
        assert np.array_equal(x[i], expected)
    gray, _, _, _ = load_image_folder(folder, size=(8, 8), channels=1)
    assert gray.shape == (2, 8, 8, 1)


def test_single_wrapping_folder_is_descended_into(tmp_path):
    mac_twins = [("__MACOSX/pets/cats/._cat_00.png", b"\x00\x05\x16\x07"), ("__MACOSX/._pets", b"\x00")]
    zip_path = pets_zip(tmp_path / "pets.zip", 12, 11, prefix="pets/", extra=mac_twins)
    data = dataset_from_zip(zip_path, tmp_path / "work", "pets")
    assert data.class_names == ("cats", "dogs") and data.counts() == {"cats": 12, "dogs": 11}
    deeper = pets_zip(tmp_path / "deeper.zip", 12, 11, prefix="Downloads/pets/")
    assert dataset_from_zip(deeper, tmp_path / "work", "pets").class_names == ("cats", "dogs")


def test_files_that_are_not_pictures_are_skipped_and_counted(tmp_path):
    extra = [("cats/homework.png", b"this is a text file with a .png name\n"),
             ("cats/.png", b"hidden, and not a picture"),
             ("dogs/cut.jpg", picture(BLUE, (120, 120), "JPEG")[:400]),
             ("dogs/puppies/pup.png", picture(BLUE)),  # deeper inside a class folder: still a dog
             ("README.txt", b"my pets")]
    zip_path = pets_zip(tmp_path / "pets.zip", 12, 11, extra=extra)
    result = image_folder.import_zip(zip_path, tmp_path / "work", "pets")
    assert result.dataset.counts() == {"cats": 12, "dogs": 12}
    assert result.skipped == {
        archive.SKIPPED_NOT_IMAGE: 1, archive.SKIPPED_BROKEN_IMAGE: 1,
        archive.SKIPPED_HIDDEN: 1, archive.SKIPPED_LOOSE: 1,
    }
    assert image_folder.describe_skipped(result.skipped) == (
        "Skipped 3 files: 1 files outside a class folder, 1 not images we can read, 1 damaged or incomplete images."
    )


def test_a_single_class_zip_is_refused(tmp_path):
    zip_path = make_zip(tmp_path / "cats.zip", [(f"cats/{i}.png", picture(RED, seed=i)) for i in range(12)])
    with pytest.raises(ArchiveError, match='at least 2 classes.*only one, "cats"'):
        dataset_from_zip(zip_path, tmp_path / "work", "cats")
    loose = make_zip(tmp_path / "loose.zip", [(f"{i}.png", picture(RED, seed=i)) for i in range(12)])
    with pytest.raises(ArchiveError, match="at least 2 classes.*has none"):
        dataset_from_zip(loose, tmp_path / "work", "loose")


def test_a_class_without_readable_pictures_is_refused(tmp_path):
    zip_path = pets_zip(tmp_path / "pets.zip", 12, 11, extra=[("birds/tweety.png", b"not a picture")])
    with pytest.raises(ArchiveError, match="No pictures we could read in: birds.*1 not images we can read"):
        dataset_from_zip(zip_path, tmp_path / "work", "pets")


# --- the class table ---------------------------------------------------------------------------


def test_class_table_warns_about_small_and_unbalanced_classes():
    table = class_table({"cats": 40, "dogs": 12, "birds": 4, "fish": 0})
    assert list(table.columns) == ["class", "images", "warning"]
    assert list(table["class"]) == ["cats", "dogs", "birds", "fish"]
    assert list(table["images"]) == [40, 12, 4, 0] and table["images"].dtype == np.int64
    warn = dict(zip(table["class"], table["warning"]))
    assert warn["cats"] == ""
    assert "fewer than \"cats\"" in warn["dogs"] and "only" not in warn["dogs"]  # 40 / 12 > 3
    assert "only 4 pictures" in warn["birds"] and "10.0× fewer" in warn["birds"]
    assert warn["fish"] == "no pictures we could read"


def test_class_table_is_quiet_for_a_good_dataset():
    table = class_table({"cats": 30, "dogs": 10})  # exactly 3× and exactly 10: fine
    assert list(table["warning"]) == ["", ""]


def test_class_table_needs_two_classes():
    for counts in ({}, {"cats": 50}):
        with pytest.raises(ArchiveError, match="at least 2 classes"):
            class_table(counts)


# --- own pictures at their own size (issue 19) ------------------------------------------------


def grey_digit_png(i: int, size=28, rgb=False) -> bytes:
    """A 28×28 white-on-black stroke that differs per picture; saved as L, or as RGB with r = g = b."""
    from PIL import Image, ImageDraw

    im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(im).line([(4 + i % 7, 4), (size - 5, size - 5 - i % 5)], fill=255, width=3)
    if rgb:
        im = im.convert("RGB")
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("rgb", [False, True], ids=["saved grey", "grey saved as RGB"])
def test_small_grey_pictures_stay_small_and_grey(tmp_path, rgb):
    entries = [(f"{c}/{i}.png", grey_digit_png(i + 10 * k, rgb=rgb)) for k, c in enumerate(["ones", "sevens"]) for i in range(8)]
    imported = import_zip(make_zip(tmp_path / "digits.zip", entries), tmp_path / "work", "digits")
    data = imported.dataset
    assert data.look == ImageLook(28, 28, 1, light_on_dark=False, fit_to_content=False)
    assert data.x.shape == (16, 28, 28, 1)
    # kept, not resampled: the pixels are the file's own
    from PIL import Image

    assert np.array_equal(data.x[0, ..., 0], np.asarray(Image.open(io.BytesIO(grey_digit_png(0, rgb=rgb))).convert("L")))
    assert "28×28, grey" in imported.look_why and "enlarging adds no detail" not in imported.look_why
    assert imported.look_why in imported.notes()


def test_photos_become_96_in_colour_and_one_colour_picture_keeps_three_channels(tmp_path):
    entries = [(f"cats/{i}.jpg", picture(RED, (640, 480), "JPEG", i)) for i in range(3)]
    entries += [(f"dogs/{i}.png", grey_digit_png(i, size=300)) for i in range(3)]  # grey dogs, colour cats
    imported = import_zip(make_zip(tmp_path / "pets.zip", entries), tmp_path / "work", "pets")
    assert imported.dataset.look == ImageLook(96, 96, 3)
    assert "shrunk to 96×96" in imported.look_why and "in colour" in imported.look_why


@pytest.mark.parametrize("sizes, side", [([(28, 28)] * 5, 28), ([(8, 8)] * 3, 28), ([(32, 32), (33, 40), (31, 31)], 32),
                                         ([(50, 70), (49, 49), (200, 60)], 64), ([(4000, 3000)], 96), ([], 96)])
def test_choose_look_takes_the_smallest_side_that_holds_the_typical_picture(sizes, side):
    look, why = choose_look(sizes, grey=False)
    assert (look.height, look.width, look.channels) == (side, side, 3)
    assert f"{side}×{side}" in why
