import pytest
import torch

import unet_zoo
from unet_zoo.models import registry
from unet_zoo.models.provenance import provenance_of


def test_list_models_and_filter():
    names = unet_zoo.list_models()
    assert names[:3] == ["original", "padded", "small"]
    assert set(unet_zoo.list_models("*pad*")) == {"padded", "padded-bilinear", "padded-bn"}
    assert "timm-resnet34" in unet_zoo.list_models("timm-*")
    assert unet_zoo.list_models("nothing*") == []


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="Did you mean 'original'"):
        unet_zoo.create_model("orignal")


def test_unknown_override_is_rejected_with_argument_list():
    with pytest.raises(TypeError, match="base_channels"):
        unet_zoo.create_model("small", base_width=16)


def test_register_a_variant_in_a_few_lines():
    @registry.register_model("test-tiny", default_tile=64, description="test only")
    def tiny():
        return {**registry.small(), "base_channels": 2, "depth": 2}

    try:
        model = unet_zoo.create_model("test-tiny")
        assert model.depth == 2
        assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 2, 16, 16)
        with pytest.raises(ValueError, match="already registered"):
            registry.register_model("test-tiny", default_tile=64, description="")(tiny)
    finally:
        registry._MODELS.pop("test-tiny")


def test_pretrained_true_without_checkpoint_says_so():
    if unet_zoo.list_models("padded-bn", pretrained=True):
        pytest.skip("padded-bn has a checkpoint")
    with pytest.raises(ValueError, match="no pretrained checkpoint"):
        unet_zoo.create_model("padded-bn", pretrained=True)


def test_pretrained_true_with_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="Did you mean 'original'"):
        unet_zoo.create_model("orignal", pretrained=True)


def test_the_registry_builds_architectures_only():
    """The registry's builder reads no checkpoint: pretrained= points to the loader."""
    with pytest.raises(TypeError, match="from_pretrained"):
        registry.create_model("small", pretrained=True)


def test_a_built_model_records_its_architecture_and_arguments():
    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    record = provenance_of(model)
    assert (record.kind, record.architecture, record.source) == ("built", "small", "small")
    assert record.args == registry.model_args("small", base_channels=4, depth=2)
    assert record.sha256 is None and record.checkpoint is None and record.pixel_size_nm is None
