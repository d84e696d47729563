"""Issue 10, items 2 and 5: a tiny zip must not buy minutes of CPU or a huge dataset file.

Item 2: a 26 KB zip of 80 all-black 40-megapixel PNGs took half a minute of CPU to import (each
entry passes the compression-ratio check: PNG is already compressed). Now every picture is
judged from its header (16 megapixels at most) and the whole zip's pixels are added up before
any is decoded (1,000 megapixels at most per upload).
Item 5: a 0.8 MB zip of 5,000 1x1 PNGs became a 138 MB dataset file; datasets are compressed now.
"""

from __future__ import annotations

import resource
import time

import numpy as np
import pytest

from lab import image_folder
from lab.archive import ArchiveError
from lab.image_folder import import_zip
from lab.user_datasets import UserDatasets
from tests.hostile import MB, black_png, one_pixel_pngs_zip, peak_rise, zip_of


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


@pytest.fixture(scope="module")
def png_40mp():
    return black_png((8000, 5000))


def test_zip_of_40_megapixel_pngs_is_refused_without_decoding(tmp_path, png_40mp):
    path = zip_of(tmp_path / "black.zip", png_40mp, 80)
    assert path.stat().st_size < 30_000  # 26 KB
    t = cpu()
    with pytest.raises(ArchiveError) as refused:
        import_zip(path, tmp_path / "work", "black")
    spent = cpu() - t
    message = str(refused.value)
    assert "80 images too large (over 16 megapixels)" in message and "No pictures we could read" in message
    assert spent < 3  # was 28 s of CPU on this machine (16 s in the issue)
    assert not any((tmp_path / "work").iterdir())  # nothing left behind


def test_zip_whose_pictures_add_up_past_the_budget_is_refused_before_decoding(tmp_path):
    # 15-megapixel pictures pass the per-picture limit; 80 of them are 1,200 megapixels to decode.
    path = zip_of(tmp_path / "black15.zip", black_png((5000, 3000)), 80)
    assert path.stat().st_size < 30_000
    t = cpu()
    with pytest.raises(ArchiveError, match=r"add up to 1,200 megapixels; one upload may hold at most 1,000 "
                                           r"megapixels, each picture at most 16 megapixels"):
        import_zip(path, tmp_path / "work", "black")
    assert cpu() - t < 3  # judged from the headers alone


def test_decode_budget_counts_the_whole_zip(tmp_path):
    """Scaled down (a 40-megapixel budget) so the accepted case decodes quickly."""
    png = black_png((5000, 3000))  # 15 megapixels each
    with pytest.raises(ArchiveError, match="add up to 45 megapixels; one upload may hold at most 40"):
        import_zip(zip_of(tmp_path / "three.zip", png, 3), tmp_path / "work", "x", max_total_pixels=40_000_000)
    t = cpu()
    imported = import_zip(zip_of(tmp_path / "two.zip", png, 2), tmp_path / "work", "x", max_total_pixels=40_000_000)
    assert imported.dataset.x.shape == (2, 96, 96, 1) and not imported.dataset.x.any()  # black: grey, one channel
    assert cpu() - t < 5
    # The per-picture limit can be lowered too: then they are skipped, and said to be.
    with pytest.raises(ArchiveError, match="2 images too large"):
        import_zip(zip_of(tmp_path / "two.zip", png, 2), tmp_path / "work2", "x", max_pixels=10_000_000)


def test_default_budget_is_what_the_messages_say():
    assert image_folder.MAX_IMPORT_PIXELS == 1_000_000_000


@pytest.mark.slow
def test_zip_of_5000_one_pixel_pngs_makes_a_small_dataset_file(tmp_path):
    path = one_pixel_pngs_zip(tmp_path / "dots.zip")
    assert path.stat().st_size < 1_000_000  # 0.8 MB
    store = UserDatasets(tmp_path / "datasets")
    t = time.monotonic()
    (info, imported), rise = peak_rise(lambda: store.add_zip("alice", path, "dots"))
    assert time.monotonic() - t < 30
    assert sum(info.counts.values()) == 5000 and info.counts == {"a": 2500, "b": 2500}
    # 5,000 x 96 x 96 x 3 bytes = 138 MB in memory, once (no second copy from np.stack) ...
    assert rise < 138 * MB + 150 * MB
    # ... and a small file on disk: each picture is one colour.
    files = list((tmp_path / "datasets").glob("*/data.npz"))
    assert len(files) == 1 and files[0].stat().st_size < 3_000_000  # was 138 MB (np.savez, uncompressed)
    again = UserDatasets(tmp_path / "datasets").load(info.dataset_id, "alice")
    assert np.array_equal(again.x, imported.dataset.x) and np.array_equal(again.y, imported.dataset.y)


def test_datasets_saved_uncompressed_before_still_load(tmp_path):
    store = UserDatasets(tmp_path)
    x = np.zeros((4, 12, 12, 3), np.uint8)
    from lab.images import ImageLook

    info = store.add("bob", "old", x, np.array([0, 0, 1, 1]), ("a", "b"), ImageLook(12, 12, 3), source="webcam")
    folder = next(p for p in tmp_path.iterdir() if not p.name.startswith("."))
    np.savez(folder / "data.npz", x=x, y=np.array([0, 0, 1, 1]))  # as the app saved them until now
    assert UserDatasets(tmp_path).load(info.dataset_id, "bob").x.shape == (4, 12, 12, 3)
