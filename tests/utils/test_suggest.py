"""unet_zoo.utils.suggest: the "did you mean" hints of every name lookup."""

from __future__ import annotations

from unet_zoo.utils.suggest import close_matches, did_you_mean


def test_close_matches_finds_typos_closest_first():
    assert close_matches("orignal", ["small", "original", "padded"]) == ["original"]
    assert close_matches("smal", ["small", "smaller", "padded"], n=1) == ["small"]
    assert close_matches("zzz", ["small", "original"]) == []


def test_cutoff_and_n_limit_the_matches():
    known = ["isbi-small", "isbi-smell", "isbi-spall"]
    assert len(close_matches("isbi-smal", known, n=2)) == 2
    assert close_matches("tin", ["tiny"], cutoff=0.99) == []


def test_did_you_mean_is_a_sentence_or_nothing():
    assert did_you_mean("orignal", ["original", "small"]) == " Did you mean 'original'?"
    assert did_you_mean("smal", ["small", "smalll"]) == " Did you mean 'small', 'smalll'?"
    assert did_you_mean("zzz", ["original"]) == ""
    assert did_you_mean("a", []) == ""
