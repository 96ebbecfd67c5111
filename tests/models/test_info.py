import torch

import unet_zoo


def test_model_info_original():
    info = unet_zoo.model_info("original")
    assert info.params == 31_030_658
    assert (info.default_tile, info.output_tile) == (572, 388)
    assert info.receptive_field == 185
    assert info.size_rule.startswith("output = input - 184")
    assert 250 < info.gflops < 350  # ~2 * MACs of Fig. 1 at 572x572
    assert info.as_dict()["config"]["padding"] == 0


def test_info_does_not_allocate_real_weights():
    # Built on the meta device: the 31M-parameter model costs no memory.
    info = unet_zoo.model_info("padded", base_channels=8)
    assert info.params < 1_000_000 and info.output_tile == 512
    assert torch.empty(0).device.type == "cpu"
