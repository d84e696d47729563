"""The datasets Keras downloads (MNIST, Fashion-MNIST, CIFAR-10, the flower photos): fetched
through Keras' own code, cached, cut to a subset, with progress and plain offline messages.

Downloads go through `keras.datasets.<name>.load_data()` and `keras.utils.get_file`, and are
cached in Keras' data directory: `$KERAS_HOME/datasets`, or `~/.keras/datasets` when KERAS_HOME
is not set (`/tmp/.keras/datasets` when that is not writable). KERAS_HOME is read at every load,
so it may be set after Keras was imported (Keras itself reads it only once).

To keep a CPU-only Space quick, each downloaded dataset is cut to a stratified subset of
`VISION_LAB_SUBSET` images (default 2,000; 0 = all), drawn from its train and test parts
together (the lab makes its own validation split), the same images every time. A failed
download raises `DatasetError` (lab.dataset_base, re-exported by lab.datasets), saying what still works.
The registry (lab.datasets) imports this module when a dataset is first loaded; this module never
imports the registry.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import os
import socket
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from lab.dataset_base import (
    CIFAR10_CLASSES,
    CIFAR10_LOOK,
    DIGIT_CLASSES,
    FASHION_CLASSES,
    FASHION_LOOK,
    FLOWER_CLASSES,
    FLOWERS_LOOK,
    MNIST_LOOK,
    Dataset,
    DatasetError,
)
from lab.images import ImageError, ImageLook, prepare, read_image

SUBSET_ENV = "VISION_LAB_SUBSET"
DEFAULT_SUBSET = 2000
SUBSET_SEED = 0  # fixed: every process and every student gets the same images
# Keras' download (urllib.request.urlretrieve) has no timeout, so before a download the
# server (or the proxy) must accept a connection within this many seconds.
CONNECT_TIMEOUT = 5.0
STILL_WORKS = "The bundled 'digits' dataset still works."

FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"

# One download at a time: two students picking the same dataset must not write the same
# file at once, and Keras' cache location is a process-wide setting (see _keras_home_at).
_DOWNLOAD_LOCK = threading.Lock()


def subset_size() -> int:
    """Images per downloaded dataset, from VISION_LAB_SUBSET (default 2,000; 0 = all)."""
    raw = os.environ.get(SUBSET_ENV, "").strip()
    if not raw:
        return DEFAULT_SUBSET
    try:
        n = int(raw.replace(",", "").replace("_", ""))
    except ValueError:
        n = -1
    if n < 0:
        raise DatasetError(f"{SUBSET_ENV}={raw!r} is not a number of images; use e.g. 2000, or 0 for all of them.")
    return n


def keras_home() -> Path:
    """Keras' home directory as of now: $KERAS_HOME, else ~/.keras (Keras' own rule)."""
    env = os.environ.get("KERAS_HOME")
    if env:
        return Path(env).expanduser()
    base = os.path.expanduser("~")
    return Path(base if os.access(base, os.W_OK) else "/tmp") / ".keras"


def data_dir() -> Path:
    """Where downloads are cached: <Keras home>/datasets, or /tmp/.keras/datasets as Keras
    falls back to when the home is not writable."""
    home = keras_home()
    with contextlib.suppress(OSError):
        home.mkdir(parents=True, exist_ok=True)  # Keras treats a missing home as unwritable
    if not os.access(home, os.W_OK):
        home = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()) / ".keras"
    return home / "datasets"


def stratified_subset(y: np.ndarray, size: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """Sorted indices of `size` samples keeping each class's share (all when size is 0 or
    at least len(y)). The same labels, size and seed always give the same indices."""
    y = np.asarray(y).ravel()
    if size <= 0 or size >= len(y):
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (size / len(y))
    take = np.floor(exact).astype(np.int64)
    leftover = size - int(take.sum())
    take[np.argsort(-(exact - take), kind="stable")[:leftover]] += 1  # largest remainders
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picks))


def _subset_of_parts(parts: list[tuple[np.ndarray, np.ndarray]], size: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified subset of several (x, y) parts taken together, without copying them all."""
    ys = [np.asarray(y).reshape(-1).astype(np.int64) for _, y in parts]
    idx = stratified_subset(np.concatenate(ys), size)
    xs, starts = [], np.cumsum([0] + [len(y) for y in ys])
    for (x, _), lo, hi in zip(parts, starts[:-1], starts[1:]):
        xs.append(np.asarray(x)[idx[(idx >= lo) & (idx < hi)] - lo])
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)[idx]


@contextlib.contextmanager
def _keras_home_at(home: Path):
    """Point Keras' downloads at `home` for the duration.

    `keras.datasets.*.load_data()` take no cache directory: `keras.utils.get_file` uses Keras'
    home, which Keras reads from KERAS_HOME once, at import. Setting that (private) value makes
    a KERAS_HOME set later count too. Callers hold _DOWNLOAD_LOCK.
    """
    try:
        from keras.src.backend import config  # imports Keras: the backend is chosen by now
    except ImportError:
        config = None
    if not hasattr(config, "_KERAS_DIR"):  # a Keras without it: its import-time home is used
        yield
        return
    before = config._KERAS_DIR
    config._KERAS_DIR = str(home)
    try:
        yield
    finally:
        config._KERAS_DIR = before


def _check_reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise OSError fast when `url`'s server (or the proxy urllib would use) does not answer."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = p.hostname, p.port or (443 if p.scheme == "https" else 80)
    socket.create_connection((host, port), timeout=timeout).close()


_NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror, http.client.HTTPException)


def _is_network_error(e: BaseException) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        # Keras re-raises a URLError as Exception("URL fetch failure on ..."); a bad hash
        # right after a download means it was cut short.
        if isinstance(e, _NETWORK_ERRORS) or str(e).startswith(("URL fetch failure", "Incomplete or corrupted file")):
            return True
        e = e.__cause__ or e.__context__
    return False


_reporter = threading.local()  # per thread: the callable that hears how far a download is


@contextlib.contextmanager
def reporting(report: Callable[[str, float], None]):
    """While inside, downloads made by this thread call `report(title, fraction done)`.

    The job worker shows it in the status line, the Data tab in its progress bar.
    """
    before = getattr(_reporter, "fn", None)
    _reporter.fn = report
    try:
        yield
    finally:
        _reporter.fn = before


@contextlib.contextmanager
def _progress_of_keras_downloads(title: str):
    """Hear the progress of Keras' own download (`keras.utils.get_file` fetches through
    `file_utils.urlretrieve` with a progress hook) and pass it to this thread's reporter.
    Callers hold _DOWNLOAD_LOCK: the module attribute is swapped for the duration only."""
    report = getattr(_reporter, "fn", None)
    try:
        from keras.src.utils import file_utils
    except ImportError:
        file_utils = None
    if report is None or not callable(getattr(file_utils, "urlretrieve", None)):
        yield  # a Keras without it downloads as usual, without progress
        return
    original = file_utils.urlretrieve

    def urlretrieve(url, filename, reporthook=None, *args, **kwargs):
        def hook(blocks, block_size, total):
            if reporthook is not None:
                reporthook(blocks, block_size, total)
            if total and total > 0:
                report(title, min(1.0, blocks * block_size / total))

        return original(url, filename, hook, *args, **kwargs)

    file_utils.urlretrieve = urlretrieve
    try:
        yield
    finally:
        file_utils.urlretrieve = original


def _download(title: str, origin: str, cached: tuple[str, ...], fetch: Callable[[Path], object]):
    """Run `fetch(home)` (Keras' download-and-read code) with the cache in Keras' home as of now.

    `cached` are the paths under data_dir() Keras keeps once it has downloaded; while one is
    missing, the server must answer within CONNECT_TIMEOUT first. Any failure becomes a
    DatasetError saying what still works, with the original exception chained.
    """
    home = data_dir().parent
    offline = f"Could not download {title} (no internet connection?). {STILL_WORKS}"
    with _DOWNLOAD_LOCK:
        if not all((home / "datasets" / p).exists() for p in cached):
            try:
                _check_reachable(origin)
            except OSError as e:  # no route, no DNS, refused, timed out
                raise DatasetError(offline) from e
        try:
            with _keras_home_at(home), _progress_of_keras_downloads(title):
                return fetch(home)
        except Exception as e:
            if _is_network_error(e):
                msg = offline
            else:
                msg = (f"Could not read {title} from {home / 'datasets'} ({type(e).__name__}: {e}); "
                       f"delete its files there to download it again. {STILL_WORKS}")
            raise DatasetError(msg) from e


def _keras_dataset(name: str, title: str, origin: str, cached: tuple[str, ...], class_names: tuple[str, ...],
                   look: ImageLook) -> Dataset:
    def fetch(home: Path):
        import keras

        return getattr(keras.datasets, name).load_data()

    size = subset_size()  # a bad setting is reported before any download
    (x_train, y_train), (x_test, y_test) = _download(title, origin, cached, fetch)
    x, y = _subset_of_parts([(x_train, y_train), (x_test, y_test)], size)
    if x.ndim == 4 and x.shape[1] == look.channels != x.shape[-1]:
        x = x.transpose(0, 2, 3, 1)  # Keras configured for channels_first
    x = np.ascontiguousarray(x.reshape((-1, *look.shape())), dtype=np.uint8)
    return Dataset(name, x, y, class_names, look)


_KERAS_BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def load_mnist() -> Dataset:
    return _keras_dataset("mnist", "MNIST", _KERAS_BASE + "mnist.npz", ("mnist.npz",),
                          DIGIT_CLASSES, MNIST_LOOK)


def load_fashion_mnist() -> Dataset:
    files = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")
    return _keras_dataset("fashion_mnist", "Fashion-MNIST", _KERAS_BASE + files[0],
                          tuple(f"fashion-mnist/{f}" for f in files), FASHION_CLASSES, FASHION_LOOK)


def load_cifar10() -> Dataset:
    return _keras_dataset("cifar10", "CIFAR-10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                          ("cifar-10-batches-py-target_archive",), CIFAR10_CLASSES, CIFAR10_LOOK)


def load_flowers() -> Dataset:
    """TensorFlow's flower photos (3,670 JPEGs in 5 folders), as in the Keras tutorials."""

    def fetch(home: Path) -> Path:
        import keras

        return Path(keras.utils.get_file(origin=FLOWERS_URL, extract=True, cache_dir=str(home)))

    size = subset_size()
    # get_file extracts the archive again on every call: once per process, as load() caches.
    root = _download("the flower photos", FLOWERS_URL, ("flower_photos.tgz_archive",), fetch)
    if (root / "flower_photos").is_dir():
        root = root / "flower_photos"
    files, labels = [], []
    for c, cls in enumerate(FLOWER_CLASSES):
        found = sorted(p for p in (root / cls).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        files += found
        labels += [c] * len(found)
    if not files:
        raise DatasetError(f"No flower photos in {root}; delete it to download them again. {STILL_WORKS}")
    idx = stratified_subset(np.array(labels), size)
    look = FLOWERS_LOOK

    def decode(i: int):
        try:
            with Image.open(files[i]) as im:
                # JPEG decodes at 1/2..1/8 scale, still at least 96x96: 2-3x faster on a CPU Space.
                im.draft("RGB", (look.width, look.height))
                # Then the Try tab's own reading and preprocessing, so training matches it.
                return np.rint(prepare(read_image(im), look) * np.float32(255.0)).astype(np.uint8)
        except (ImageError, OSError, Image.DecompressionBombError):
            return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        decoded = list(pool.map(decode, idx))  # PIL decodes outside the GIL
    keep = [k for k, im in enumerate(decoded) if im is not None]
    if len(keep) < len(idx):
        warnings.warn(f"skipped {len(idx) - len(keep)} unreadable flower photos", stacklevel=2)
    if not keep:
        raise DatasetError(f"None of the flower photos in {root} could be read; delete it to download them again. "
                           f"{STILL_WORKS}")
    x = np.stack([decoded[k] for k in keep])
    y = np.array(labels, dtype=np.int64)[idx[keep]]
    return Dataset("flowers", x, y, FLOWER_CLASSES, look)
