"""The bundled digits: real, loadable offline, split reproducibly and stratified."""

import numpy as np
import pytest

from lab import datasets


def test_digits_are_real_and_look_as_declared():
    d = datasets.load("digits")
    assert d.x.dtype == np.uint8 and d.x.shape[1:] == d.look.shape() == (8, 8, 1)
    assert len(d.x) == len(d.y) == 1797
    assert d.class_names == tuple(str(i) for i in range(10)) == datasets.DATASETS["digits"].class_names
    assert sum(d.counts().values()) == 1797 and min(d.counts().values()) > 150
    assert d.look.light_on_dark  # light strokes on a dark background
    # dark background: the corners are mostly zero, the centre is not
    assert d.x[:, 0, 0, 0].mean() < 10 and d.x[:, 3:5, 3:5, 0].mean() > 60


def test_split_is_stratified_disjoint_and_reproducible():
    d = datasets.load("digits")
    tr, va = datasets.split(d, 0.2, seed=7)
    assert len(set(tr) & set(va)) == 0 and len(tr) + len(va) == len(d.y)
    assert abs(len(va) / len(d.y) - 0.2) < 0.01
    per_class = np.bincount(d.y[va], minlength=10) / np.bincount(d.y, minlength=10)
    assert np.all(np.abs(per_class - 0.2) < 0.03)
    tr2, va2 = datasets.split(d, 0.2, seed=7)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert not np.array_equal(datasets.split(d, 0.2, seed=8)[1], va)


def test_sample_grid_has_a_row_per_class():
    d = datasets.load("digits")
    grid = datasets.sample_grid(d, per_class=5, cell=40)
    scale = 40 // 8
    assert grid.shape == (10 * (8 * scale + 4), 5 * (8 * scale + 4))


def test_unknown_dataset_says_which_exist():
    with pytest.raises(datasets.DatasetError, match="digits"):
        datasets.load("imagenet")
