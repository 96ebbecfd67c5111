"""unet_zoo.data.split: contiguous k-fold held-out slices."""

from __future__ import annotations

import pytest

from unet_zoo.data.split import split_slices


def test_split_default_and_kfold():
    train, val = split_slices()
    assert val == [24, 25, 26, 27, 28, 29] and train == list(range(24))
    covered = []
    for fold in range(5):
        train, val = split_slices(30, 5, fold)
        assert not set(train) & set(val) and sorted(train + val) == list(range(30))
        assert val == list(range(val[0], val[-1] + 1))  # contiguous
        covered += val
    assert sorted(covered) == list(range(30))
    assert split_slices(30, 4, 3)[1] == list(range(23, 30))  # uneven blocks differ by at most one
    assert split_slices(10, 3, 1) == split_slices(10, 3, 1)


@pytest.mark.parametrize("args", [(30, 1, 0), (30, 5, 5), (30, 5, -1), (1, 2, 0), (30, 31, 0)])
def test_split_bad_arguments(args):
    with pytest.raises(ValueError):
        split_slices(*args)
