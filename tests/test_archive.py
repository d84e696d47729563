"""A student's zip of class folders: hostile archives are refused or defused (lab.archive).

Every hostile archive is built here, byte by byte where zipfile would not write it.
"""

from __future__ import annotations

import contextlib
import io
import stat
import struct
import time
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lab import archive
from lab.archive import ArchiveError, safe_extract_zip

from tests.zips import BLUE, RED, make_zip, pets_zip, picture, stored_zip_bytes, tree


@pytest.fixture
def no_zipfile_parsing(monkeypatch):
    """Fails the test if zipfile is asked to parse the archive (we must refuse before that)."""
    def refuse(*args, **kwargs):
        raise AssertionError("zipfile.ZipFile was opened: the early count did not refuse the zip")

    monkeypatch.setattr(zipfile, "ZipFile", refuse)


@pytest.fixture
def headers_not_trusted(monkeypatch):
    """Switch off the early checks that believe the sizes in the headers: only counting remains."""
    monkeypatch.setattr(archive, "_check_declared_sizes", lambda *args, **kwargs: None)


# --- names that would land outside the folder ------------------------------------


@pytest.mark.parametrize("name", [
    "../evil.png",
    "cats/../../evil.png",
    "..\\evil.png",
    "cats\\..\\..\\evil.png",
    "ABSOLUTE",
    "/ABSOLUTE-BACKSLASH",
    "C:/evil.png",
    "C:\\evil.png",
    "c:evil.png",
    "cats/D:/evil.png",
    "//server/share/evil.png",
    "\\\\server\\share\\evil.png",
])
def test_names_escaping_the_folder_refuse_the_whole_zip(tmp_path, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    if name == "ABSOLUTE":
        name = str(outside / "evil.png")
    elif name == "/ABSOLUTE-BACKSLASH":
        name = str(outside / "evil.png").replace("/", "\\")
    zip_path = pets_zip(tmp_path / "up.zip", 2, 2, extra=[(name, b"gotcha")])
    target = tmp_path / "student" / "files"
    with pytest.raises(ArchiveError, match="outside its folder"):
        safe_extract_zip(zip_path, target)
    assert not target.exists()
    assert tree(tmp_path) == ["outside", "up.zip"]


def test_resolved_path_check_catches_escapes_the_name_check_missed(tmp_path, monkeypatch):
    # Second line of defence: even with a naive name check, the resolved path must stay inside.
    monkeypatch.setattr(archive, "_name_parts", lambda name: tuple(p for p in name.split("/") if p))
    monkeypatch.setattr(archive, "is_junk", lambda parts: False)  # ".." is a dot-name too
    zip_path = pets_zip(tmp_path / "up.zip", 2, 2, extra=[("../evil.png", b"gotcha")])
    target = tmp_path / "student" / "files"
    with pytest.raises(ArchiveError, match="outside its folder"):
        safe_extract_zip(zip_path, target)
    assert not (tmp_path / "student" / "evil.png").exists() and not target.exists()


def test_backslash_folders_from_old_windows_tools_unpack_normally(tmp_path):
    zip_path = make_zip(tmp_path / "up.zip", [("cats\\a.png", picture(RED)), ("dogs\\b.png", picture(BLUE))])
    report = safe_extract_zip(zip_path, tmp_path / "t")
    assert tree(tmp_path / "t") == ["cats", "cats/a.png", "dogs", "dogs/b.png"]
    assert report.files == 2


# --- links and other special entries --------------------------------------------


def test_links_and_special_entries_are_never_created(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("teacher's grades")
    link = zipfile.ZipInfo("cats/link.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    folder_link = zipfile.ZipInfo("dogs/all")
    folder_link.create_system = 3
    folder_link.external_attr = (stat.S_IFLNK | 0o777) << 16
    fifo = zipfile.ZipInfo("cats/pipe.png")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    zip_path = make_zip(tmp_path / "up.zip", [
        ("cats/a.png", picture(RED)), ("dogs/b.png", picture(BLUE)),
        (link, str(secret)), (folder_link, "/"), (fifo, b""),
    ])
    report = safe_extract_zip(zip_path, tmp_path / "t")
    assert tree(tmp_path / "t") == ["cats", "cats/a.png", "dogs", "dogs/b.png"]
    assert report.skipped == {archive.SKIPPED_LINK: 3}
    assert report.files == 2
    assert not any(p.is_symlink() for p in (tmp_path / "t").rglob("*"))


# --- bombs, sizes and counts -------------------------------------------------------


@pytest.fixture(scope="module")
def bomb_zip(tmp_path_factory) -> Path:
    # 50 MB of zeros deflates to about 50 kB: a 1000:1 ratio.
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    make_zip(path, [("cats/a.png", picture(RED)), ("dogs/b.png", picture(BLUE)),
                    ("cats/huge.bmp", bytes(50_000_000))])
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("cats/huge.bmp")
        assert info.file_size / info.compress_size > 900
    return path


@pytest.mark.parametrize("trust_headers", [True, False], ids=["headers", "counted"])
def test_compression_bomb_refuses_the_whole_zip(tmp_path, bomb_zip, trust_headers, request):
    limits = {}  # the defaults: 50 MB would pass the 200 MB total
    if not trust_headers:
        request.getfixturevalue("headers_not_trusted")
        limits["max_file_bytes"] = 100_000_000  # so the entry is read, not skipped for its stated size
    target = tmp_path / "t"
    start = time.perf_counter()
    with pytest.raises(ArchiveError, match="zip bomb"):
        safe_extract_zip(bomb_zip, target, **limits)
    assert time.perf_counter() - start < 2.0
    assert not target.exists()


def test_small_files_may_compress_well(tmp_path):
    # A blank 300 kB BMP compresses ~1000:1 but is no bomb: the ratio is judged past 1 MB only.
    blank = io.BytesIO()
    Image.new("RGB", (320, 320), "white").save(blank, "BMP")
    zip_path = make_zip(tmp_path / "up.zip", [("cats/blank.bmp", blank.getvalue()), ("dogs/b.png", picture(BLUE))])
    assert safe_extract_zip(zip_path, tmp_path / "t").files == 2


@pytest.fixture
def three_megabytes_zip(tmp_path) -> Path:
    rng = np.random.default_rng(0)  # random bytes do not compress: ratio 1
    return make_zip(tmp_path / "up.zip", [(f"cats/{i}.bin", rng.bytes(1_000_000)) for i in range(3)])


def test_total_size_from_the_headers_is_refused_before_unpacking(tmp_path, three_megabytes_zip, monkeypatch):
    def no_reading(*args, **kwargs):
        raise AssertionError("an entry was unpacked")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_reading)
    with pytest.raises(ArchiveError, match=r"unpacks to 3 MB; the limit is 2.5 MB"):
        safe_extract_zip(three_megabytes_zip, tmp_path / "t", max_total_bytes=2_500_000)
    assert not (tmp_path / "t").exists()


def test_total_size_is_counted_while_unpacking(tmp_path, three_megabytes_zip, headers_not_trusted):
    target = tmp_path / "t"
    target.mkdir()  # an existing empty folder is emptied again, not removed
    with pytest.raises(ArchiveError, match="more than 2.5 MB"):
        safe_extract_zip(three_megabytes_zip, target, max_total_bytes=2_500_000)
    assert target.is_dir() and tree(target) == []
    report = safe_extract_zip(three_megabytes_zip, target, max_total_bytes=3_000_000)
    assert report.files == 3 and report.bytes == 3_000_000


def test_a_single_oversized_file_is_skipped_and_counted(tmp_path):
    rng = np.random.default_rng(1)
    zip_path = make_zip(tmp_path / "up.zip", [
        ("cats/a.png", picture(RED)), ("cats/panorama.tif", rng.bytes(2_000_000)), ("dogs/b.png", picture(BLUE)),
    ])
    report = safe_extract_zip(zip_path, tmp_path / "t", max_file_bytes=1_000_000)
    assert report.skipped == {"files over 1 MB": 1}
    assert tree(tmp_path / "t") == ["cats", "cats/a.png", "dogs", "dogs/b.png"]


def test_data_bigger_than_its_header_says_is_caught_while_unpacking(tmp_path, monkeypatch):
    # Python's zipfile stops at the size the header states; a reader that did not would hand over
    # more. Simulate that reader: the per-file limit must hold on the bytes actually produced.
    zip_path = make_zip(tmp_path / "up.zip", [("cats/a.png", picture(RED)), ("dogs/b.png", picture(BLUE))])
    real_open = zipfile.ZipFile.open
    flood = np.random.default_rng(2).bytes(2_000_000)
    monkeypatch.setattr(zipfile.ZipFile, "open",
                        lambda self, info, *a, **k: io.BytesIO(flood) if info.filename == "cats/a.png"
                        else real_open(self, info, *a, **k))
    report = safe_extract_zip(zip_path, tmp_path / "t", max_file_bytes=1_000_000, max_ratio=10_000)
    assert report.skipped == {"files over 1 MB": 1}
    assert tree(tmp_path / "t") == ["cats", "dogs", "dogs/b.png"]


def test_hundred_thousand_entries_are_refused_from_the_central_directory(tmp_path, monkeypatch):
    zip_path = tmp_path / "many.zip"
    zip_path.write_bytes(stored_zip_bytes([f"cats/{i}.png" for i in range(100_000)]))
    with monkeypatch.context() as m:
        m.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("parsed the whole central directory"))
        start = time.perf_counter()
        with pytest.raises(ArchiveError, match=r"This zip holds 100,000 files; the limit is 5,000\."):
            safe_extract_zip(zip_path, tmp_path / "t")
        assert time.perf_counter() - start < 0.5
    assert not (tmp_path / "t").exists()
    with zipfile.ZipFile(zip_path) as zf:  # a real zip: zipfile itself would have read it all
        assert len(zf.infolist()) == 100_000


def test_an_end_record_that_understates_the_count_does_not_help(tmp_path, no_zipfile_parsing):
    data = bytearray(stored_zip_bytes([f"cats/{i}.png" for i in range(40)]))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 2, 2)  # "2 entries"
    zip_path = tmp_path / "liar.zip"
    zip_path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"more than 15 files; the limit is 5\."):
        safe_extract_zip(zip_path, tmp_path / "t", max_entries=5)


def test_entry_limit_counts_pictures_not_mac_twins_or_folders(tmp_path):
    files = [f"cats/{i}.png" for i in range(5)] + [f"dogs/{i}.png" for i in range(5)]
    mac = [f"__MACOSX/{f.rsplit('/', 1)[0]}/._{f.rsplit('/', 1)[1]}" for f in files]
    entries = [(n, b"x") for n in ["cats/", "dogs/", *files, "__MACOSX/", *mac]]
    ok = make_zip(tmp_path / "ok.zip", entries)
    report = safe_extract_zip(ok, tmp_path / "t1", max_entries=10)
    assert report.files == 10 and report.skipped == {archive.SKIPPED_HIDDEN: 10}
    too_many = make_zip(tmp_path / "big.zip", [*entries, ("dogs/extra.png", b"x")])
    with pytest.raises(ArchiveError, match=r"This zip holds 11 files; the limit is 10\."):
        safe_extract_zip(too_many, tmp_path / "t2", max_entries=10)
    assert not (tmp_path / "t2").exists()


# --- duplicates -------------------------------------------------------------------------


NFC = unicodedata.normalize("NFC", "cats/café.png")
NFD = unicodedata.normalize("NFD", "cats/café.png")


@pytest.mark.parametrize("first, second, message", [
    ("cats/a.png", "cats/a.png", "two files named"),
    ("cats/a.png", "cats/A.png", "capital letters"),
    ("Cats/a.png", "cats/b.png", "capital letters"),
    (NFC, NFD, "two different files both written"),
    ("cats", "cats/a.png", "both a file and a folder"),
])
def test_duplicate_names_refuse_the_whole_zip(tmp_path, first, second, message):
    with pytest.warns(UserWarning) if first == second else contextlib.nullcontext():
        zip_path = make_zip(tmp_path / "up.zip", [(first, picture(RED)), (second, picture(BLUE)),
                                                  ("dogs/b.png", picture(BLUE))])
    with pytest.raises(ArchiveError, match=message):
        safe_extract_zip(zip_path, tmp_path / "t")
    assert not (tmp_path / "t").exists()


# --- junk, damage, other refusals --------------------------------------------------------


def test_mac_and_windows_junk_and_hidden_files_are_skipped(tmp_path):
    zip_path = make_zip(tmp_path / "up.zip", [
        ("cats/a.png", picture(RED)), ("dogs/b.png", picture(BLUE)),
        ("__MACOSX/", b""), ("__MACOSX/cats/._a.png", b"\x00\x05\x16\x07"), (".DS_Store", b"\x00\x00\x00\x01Bud1"),
        ("cats/.DS_Store", b"junk"), ("cats/.png", b"not a picture either"), ("dogs/Thumbs.db", b"junk"),
        (".git/config", b"[core]"), ("dogs/desktop.ini", b"[.ShellClassInfo]"),
    ])
    report = safe_extract_zip(zip_path, tmp_path / "t")
    assert tree(tmp_path / "t") == ["cats", "cats/a.png", "dogs", "dogs/b.png"]
    assert report.skipped == {archive.SKIPPED_HIDDEN: 7}


def test_a_damaged_entry_is_skipped_and_the_rest_unpacked(tmp_path):
    good, bad = picture(RED, seed=1), picture(RED, seed=2)
    zip_path = make_zip(tmp_path / "up.zip", [("cats/good.png", good), ("cats/bad.png", bad),
                                              ("dogs/b.png", picture(BLUE))], compression=zipfile.ZIP_STORED)
    data = bytearray(zip_path.read_bytes())
    at = data.find(bad)
    data[at + len(bad) // 2] ^= 0xFF  # the checksum no longer matches
    zip_path.write_bytes(bytes(data))
    report = safe_extract_zip(zip_path, tmp_path / "t")
    assert report.skipped == {archive.SKIPPED_DAMAGED: 1}
    assert tree(tmp_path / "t") == ["cats", "cats/good.png", "dogs", "dogs/b.png"]
    assert (tmp_path / "t" / "cats" / "good.png").read_bytes() == good


def test_files_are_plain_new_files_whatever_the_zip_says(tmp_path):
    info = zipfile.ZipInfo("cats/run.png")
    info.create_system = 3
    info.external_attr = 0o104777 << 16  # setuid, world-writable, executable
    zip_path = make_zip(tmp_path / "up.zip", [(info, picture(RED))])
    safe_extract_zip(zip_path, tmp_path / "t")
    mode = (tmp_path / "t" / "cats" / "run.png").stat().st_mode
    assert stat.S_ISREG(mode) and not mode & (stat.S_ISUID | stat.S_IXUSR | stat.S_IWOTH)


def test_not_a_zip_or_a_cut_zip_is_refused(tmp_path):
    text = tmp_path / "homework.zip"
    text.write_text("this is not a zip\n")
    whole = pets_zip(tmp_path / "whole.zip", 3, 3).read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole[: len(whole) // 2])
    for path in (text, cut):
        with pytest.raises(ArchiveError, match="not a zip archive we can open"):
            safe_extract_zip(path, tmp_path / "t")
        assert not (tmp_path / "t").exists()


def test_password_protected_zip_is_refused(tmp_path):
    zip_path = make_zip(tmp_path / "up.zip", [("cats/a.png", picture(RED)), ("dogs/b.png", picture(BLUE))])
    data = bytearray(zip_path.read_bytes())  # zipfile will not write the flag itself
    for sig, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(sig)
        data[at + flags_at] |= 0x1  # "encrypted", on the first entry
    zip_path.write_bytes(bytes(data))
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.infolist()[0].flag_bits & 0x1
    with pytest.raises(ArchiveError, match="password"):
        safe_extract_zip(zip_path, tmp_path / "t")


def test_target_must_be_empty(tmp_path):
    zip_path = pets_zip(tmp_path / "up.zip", 1, 1)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        safe_extract_zip(zip_path, tmp_path / "t")
    assert tree(tmp_path / "t") == ["keep.txt"]
