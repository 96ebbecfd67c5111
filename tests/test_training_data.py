import numpy as np

from unet_zoo import training, training_data
from unet_zoo.training_data import synthetic_cells


def test_synthetic_cells_are_binary_and_membranes_dark():
    images, labels = synthetic_cells(3, 48, seed=1)
    assert images.shape == labels.shape == (3, 48, 48) and images.dtype == labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1}
    assert 0.05 < (labels == 0).mean() < 0.6
    assert images[labels == 0].mean() < images[labels == 1].mean() - 50


def test_the_trainer_still_exports_its_data_preparation():
    for name in training_data.__all__:
        assert getattr(training, name) is getattr(training_data, name) and name in training.__all__
