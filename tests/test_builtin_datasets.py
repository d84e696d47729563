"""The downloaded datasets, offline: real Keras loading code reading files the test puts in the cache.

Each test points KERAS_HOME at its own folder and cuts the network at the socket, so nothing
here can download; files are written in the layout and format Keras' own download leaves.
"""

from __future__ import annotations

import errno
import gzip
import io
import pickle
import socket
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import keras  # noqa: F401  imported before any test sets KERAS_HOME: the loader must still honour it
from keras.src.utils import file_utils

from lab import datasets, downloads

MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
CIFAR_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
FLOWER_COLOURS = [(250, 250, 250), (250, 220, 0), (200, 0, 30), (255, 140, 0), (150, 0, 170)]


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path) -> Path:
    """A fresh KERAS_HOME, no network, no subset override, and an empty load() cache."""

    def refuse(*args, **kwargs):
        raise OSError(errno.ENETUNREACH, "network blocked by the test")

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (blocked by the test)")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.delenv(downloads.SUBSET_ENV, raising=False)
    datasets.load.cache_clear()
    yield home
    datasets.load.cache_clear()  # no test data may outlive the test


@pytest.fixture
def hashes(monkeypatch) -> list:
    """Keras checks a cached file against the real download's hash; a test file cannot match
    it, so the check records what it was asked and accepts (everything else is Keras' code)."""
    calls = []

    def validate_file(fpath, file_hash, algorithm="auto", chunk_size=65535):
        calls.append((Path(fpath).resolve(), file_hash))
        return True

    monkeypatch.setattr(file_utils, "validate_file", validate_file)
    return calls


def labels(counts) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts).astype(np.uint8)


def grey_images(y: np.ndarray, source: int) -> np.ndarray:
    """28x28 images whose centre says the label and whose corner says train (1) or test (2)."""
    x = np.zeros((len(y), 28, 28), np.uint8)
    x[:, 10:18, 10:18] = (20 * y.astype(np.int64) + 10)[:, None, None]
    x[:, 0, 0] = source
    return x


def write_mnist(home: Path, train_counts, test_counts) -> Path:
    y_tr, y_te = labels(train_counts), labels(test_counts)
    path = home / "datasets" / "mnist.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=grey_images(y_tr, 1), y_train=y_tr, x_test=grey_images(y_te, 2), y_test=y_te)
    return path


def write_fashion(home: Path, train_counts, test_counts) -> None:
    folder = home / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, counts, source in (("train", train_counts, 1), ("t10k", test_counts, 2)):
        y = labels(counts)
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 2049, len(y)) + y.tobytes())
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 2051, len(y), 28, 28) + grey_images(y, source).tobytes())


def cifar_batch(y: np.ndarray, source: int) -> bytes:
    """One CIFAR pickle: {b"data": (N, 3072) uint8 in CHW order, b"labels": [...]}, bytes keys."""
    x = np.zeros((len(y), 3, 32, 32), np.uint8)
    x[:, 0] = (20 * y + 10)[:, None, None]  # red channel: the label
    x[:, 2, 0, 0] = source  # blue corner: train (1) or test (2)
    d = {b"batch_label": b"made by the test", b"labels": [int(v) for v in y], b"data": x.reshape(len(y), -1)}
    return pickle.dumps(d, protocol=4)


def write_cifar_archive(home: Path) -> Path:
    """The download Keras keeps: `cifar-10-batches-py-target_archive`, a tar.gz of the batches.

    Keras' reader needs 5 train batches of exactly 10,000 images; the test batch may be smaller.
    """
    path = home / "datasets" / "cifar-10-batches-py-target_archive"
    path.parent.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": cifar_batch(np.arange(10_000) % 10, 1) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(np.arange(500) % 10, 2)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_flowers_archive(home: Path, counts, extra: dict[str, bytes] | None = None) -> Path:
    """flower_photos.tgz as the tutorial's get_file keeps it: flower_photos/<class>/*.jpg."""
    path = home / "datasets" / "flower_photos.tgz_archive"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(f"flower_photos/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        licence = b"photos made by the test\n"
        info = tarfile.TarInfo("flower_photos/LICENSE.txt")
        info.size = len(licence)
        tar.addfile(info, io.BytesIO(licence))
        for c, (cls, n) in enumerate(zip(downloads.FLOWER_CLASSES, counts)):
            for k in range(n):
                buf = io.BytesIO()
                size = (120 + 40 * k, 90 + 10 * c)  # varied, never square
                Image.new("RGB", size, FLOWER_COLOURS[c]).save(buf, "JPEG", quality=95)
                info = tarfile.TarInfo(f"flower_photos/{cls}/{cls}_{k}.jpg")
                info.size = buf.tell()
                buf.seek(0)
                tar.addfile(info, buf)
    return path


def assert_stratified(y: np.ndarray, all_counts, size: int) -> None:
    all_counts = np.asarray(all_counts)
    expected = all_counts * size / all_counts.sum()
    got = np.bincount(y, minlength=len(all_counts))
    assert got.sum() == size
    assert np.all(np.abs(got - expected) < 1), (got, expected)


# --- the datasets ------------------------------------------------------------


def test_mnist_real_loader_reads_keras_cache_in_keras_home(home, hashes, monkeypatch):
    from keras.src.backend import config as keras_config

    assert keras_config.keras_home() != str(home)  # Keras read its home before KERAS_HOME was set
    keras_home_before = keras_config.keras_home()
    train, test = [12, 14, 10, 11, 9, 13, 10, 12, 9, 10], [4, 6, 5, 5, 4, 6, 5, 5, 5, 5]
    path = write_mnist(home, train, test)
    monkeypatch.setenv(downloads.SUBSET_ENV, "40")

    d = datasets.load("mnist")

    assert hashes == [(path.resolve(), MNIST_SHA256)]  # keras.datasets.mnist found the file we wrote
    assert keras_config.keras_home() == keras_home_before  # and Keras' own setting is put back
    assert d.name == "mnist" and d.class_names == tuple("0123456789") == datasets.DATASETS["mnist"].class_names
    assert d.x.dtype == np.uint8 and d.y.dtype == np.int64
    assert d.x.shape == (40, 28, 28, 1) and d.x.shape[1:] == d.look.shape()
    assert d.look.light_on_dark and d.look.fit_to_content
    assert np.array_equal(d.x[:, 14, 14, 0], 20 * d.y + 10)  # every image kept its own label
    assert set(d.x[:, 0, 0, 0]) == {1, 2}  # drawn from train and test together
    assert_stratified(d.y, np.add(train, test), 40)
    assert not d.x.flags.writeable


def test_subset_is_the_same_every_time_and_zero_means_all(home, hashes, monkeypatch):
    train, test = [30] * 10, [10] * 10
    write_mnist(home, train, test)
    monkeypatch.setenv(downloads.SUBSET_ENV, "50")
    first = datasets.DATASETS["mnist"].load()
    again = datasets.DATASETS["mnist"].load()
    assert np.array_equal(first.x, again.x) and np.array_equal(first.y, again.y)
    assert np.array_equal(np.bincount(first.y), [5] * 10)

    monkeypatch.setenv(downloads.SUBSET_ENV, "0")
    everything = datasets.DATASETS["mnist"].load()
    assert len(everything.y) == 400 and np.array_equal(np.bincount(everything.y), [40] * 10)

    monkeypatch.delenv(downloads.SUBSET_ENV)
    assert len(datasets.DATASETS["mnist"].load().y) == 400  # fewer than the default 2,000: all


def test_fashion_mnist_reads_keras_idx_files(home, monkeypatch):
    train, test = [8, 9, 10, 11, 12, 8, 9, 10, 11, 12], [3] * 10
    write_fashion(home, train, test)
    monkeypatch.setenv(downloads.SUBSET_ENV, "60")
    d = datasets.load("fashion_mnist")
    assert d.class_names == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot") == datasets.DATASETS["fashion_mnist"].class_names
    assert d.x.dtype == np.uint8 and d.x.shape == (60, 28, 28, 1) == (60, *d.look.shape())
    assert d.look.light_on_dark and not d.look.fit_to_content
    assert np.array_equal(d.x[:, 14, 14, 0], 20 * d.y + 10)
    assert set(d.x[:, 0, 0, 0]) == {1, 2}
    assert_stratified(d.y, np.add(train, test), 60)


def test_cifar10_extracts_keras_archive_and_reads_the_batches(home, hashes, monkeypatch):
    archive = write_cifar_archive(home)
    monkeypatch.setenv(downloads.SUBSET_ENV, "300")
    d = datasets.load("cifar10")
    assert hashes == [(archive.resolve(), CIFAR_SHA256)]
    assert (home / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py" / "test_batch").is_file()
    assert d.class_names == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    assert d.class_names == datasets.DATASETS["cifar10"].class_names  # declared up front, without a download
    assert d.x.dtype == np.uint8 and d.x.shape == (300, 32, 32, 3) == (300, *d.look.shape())
    assert d.look.channels == 3 and not d.look.light_on_dark and not d.look.fit_to_content
    assert np.array_equal(d.x[:, 5, 5, 0], 20 * d.y + 10)  # channels last, labels aligned
    assert np.array_equal(np.bincount(d.y), [30] * 10)
    assert set(d.x[:, 0, 0, 2]) == {1, 2}  # train and test together (500 of the 50,500 are test)


def test_flowers_decode_resize_and_keep_their_class(home, monkeypatch):
    counts = [4, 7, 5, 6, 8]
    write_flowers_archive(home, counts)
    monkeypatch.setenv(downloads.SUBSET_ENV, "15")
    d = datasets.load("flowers")
    assert d.class_names == ("daisy", "dandelion", "roses", "sunflowers", "tulips") == datasets.DATASETS["flowers"].class_names
    assert d.look.shape() == (96, 96, 3) and not d.look.light_on_dark and not d.look.fit_to_content
    assert d.x.dtype == np.uint8 and d.x.shape == (15, 96, 96, 3)
    assert_stratified(d.y, counts, 15)
    colours = d.x.reshape(15, -1, 3).mean(axis=1)
    assert np.all(np.abs(colours - np.array(FLOWER_COLOURS)[d.y]) < 6)  # each photo under its own class

    monkeypatch.setenv(downloads.SUBSET_ENV, "0")
    assert list(datasets.DATASETS["flowers"].load().counts().values()) == counts


def test_an_unreadable_flower_photo_is_skipped(home, monkeypatch):
    write_flowers_archive(home, [2, 2, 2, 2, 2], extra={"tulips/broken.jpg": b"\xff\xd8 not really a jpeg"})
    monkeypatch.setenv(downloads.SUBSET_ENV, "0")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        d = datasets.load("flowers")
    assert list(d.counts().values()) == [2, 2, 2, 2, 2]


def test_every_downloaded_dataset_declares_what_it_is_for():
    for name in ("mnist", "fashion_mnist", "cifar10", "flowers"):
        spec = datasets.DATASETS[name]
        assert spec.name == name and spec.download_mb > 0
        assert spec.description and "\n" not in spec.description and len(spec.description) < 140
    assert datasets.DATASETS["digits"].download_mb == 0


# --- offline, failures and retries --------------------------------------------


def test_offline_says_so_and_points_at_the_digits(home):
    with pytest.raises(datasets.DatasetError) as caught:
        datasets.load("mnist")
    assert str(caught.value) == (
        "Could not download MNIST (no internet connection?). The bundled 'digits' dataset still works.")
    assert isinstance(caught.value.__cause__, OSError)  # the original error is kept
    for name, title in (("fashion_mnist", "Fashion-MNIST"), ("cifar10", "CIFAR-10"), ("flowers", "the flower photos")):
        with pytest.raises(datasets.DatasetError, match=f"Could not download {title} .*digits"):
            datasets.load(name)


def test_keras_own_download_failure_is_reported_and_leaves_no_file(home, monkeypatch):
    # Even when the server seemed reachable, Keras' download itself fails: same plain message.
    monkeypatch.setattr(downloads, "_check_reachable", lambda url, timeout=0: None)
    with pytest.raises(datasets.DatasetError, match=r"^Could not download MNIST \(no internet connection\?\)") as caught:
        datasets.load("mnist")
    chain, e = [], caught.value
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    assert "URL fetch failure" in str(chain[1])  # keras.utils.get_file's own error
    assert any(isinstance(x, urllib.error.URLError) for x in chain)
    assert not (home / "datasets" / "mnist.npz").exists()
    with pytest.raises(datasets.DatasetError, match="Could not download the flower photos"):
        datasets.load("flowers")


def test_a_failed_load_is_not_cached_and_a_retry_works(home, hashes):
    with pytest.raises(datasets.DatasetError):
        datasets.load("mnist")
    write_mnist(home, [3] * 10, [1] * 10)  # "the network is back": the file arrives
    d = datasets.load("mnist")
    assert len(d.y) == 40 and datasets.load("mnist") is d  # and now it is cached


def test_a_damaged_cache_file_says_where_it_is(home):
    write_fashion(home, [2] * 10, [1] * 10)
    (home / "datasets" / "fashion-mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(datasets.DatasetError, match="Could not read Fashion-MNIST from .*datasets") as caught:
        datasets.load("fashion_mnist")
    assert "digits" in str(caught.value) and caught.value.__cause__ is not None


def test_a_bad_subset_setting_is_explained(home, monkeypatch):
    write_mnist(home, [3] * 10, [1] * 10)
    monkeypatch.setenv(downloads.SUBSET_ENV, "lots")
    with pytest.raises(datasets.DatasetError, match="VISION_LAB_SUBSET='lots'.*0 for all"):
        datasets.load("mnist")
    monkeypatch.setenv(downloads.SUBSET_ENV, "2,000")
    assert downloads.subset_size() == 2000


def test_data_dir_follows_keras_home_as_set_now(home, monkeypatch, tmp_path):
    assert downloads.data_dir() == home / "datasets"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "elsewhere"))
    assert downloads.data_dir() == tmp_path / "elsewhere" / "datasets"
    monkeypatch.delenv("KERAS_HOME")
    assert downloads.data_dir().name == "datasets" and downloads.data_dir().parent.name == ".keras"


def test_stratified_subset_keeps_class_shares_and_is_reproducible():
    y = labels([500, 100, 300, 100])
    idx = downloads.stratified_subset(y, 100)
    assert len(idx) == len(set(idx)) == 100 and np.all(np.diff(idx) > 0)
    assert np.array_equal(np.bincount(y[idx]), [50, 10, 30, 10])
    assert np.array_equal(idx, downloads.stratified_subset(y, 100))
    assert not np.array_equal(idx, downloads.stratified_subset(y, 100, seed=1))
    assert np.array_equal(downloads.stratified_subset(y, 0), np.arange(1000))
    assert np.array_equal(downloads.stratified_subset(y, 5000), np.arange(1000))
    odd = downloads.stratified_subset(labels([7, 5, 3]), 7)
    assert len(odd) == 7 and np.all(np.bincount(labels([7, 5, 3])[odd], minlength=3) >= 1)
