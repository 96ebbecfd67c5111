"""unet_zoo.experiments.isbi2012.evaluation: a model scored on held-out ISBI 2012 slices."""

from __future__ import annotations

import pytest

from tests.evaluation.test_evaluate import Oracle
from unet_zoo.experiments.isbi2012.evaluation import evaluate_isbi


@pytest.mark.slow
def test_evaluate_isbi_on_one_real_slice(isbi_dir):
    result = evaluate_isbi(Oracle(), str(isbi_dir), split="val", fold=29, k=30)
    assert result["slices"] == [29] and result["split"] == "val"
    # the raw EM image is not the label: a brightness threshold is a poor but non-trivial segmenter
    assert 0.0 < result["vrand_thinned"] < 1.0
    with pytest.raises(ValueError, match="split"):
        evaluate_isbi(Oracle(), str(isbi_dir), split="test")
