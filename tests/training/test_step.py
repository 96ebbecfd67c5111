"""The shared optimisation step: the paper's loss, backward, clipping, update."""

import pytest
import torch

from unet_zoo.models.registry import create_model
from unet_zoo.training.losses import weighted_cross_entropy
from unet_zoo.training.step import apply_gradients, step_loss, train_step

CPU = torch.device("cpu")


def _batch(model, size=32, n=2):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, model.in_channels, size, size, generator=gen)
    with torch.no_grad():
        out = model(x).shape[-1]
    assert out == size  # a padded model: the target can be a function of the input, so it can be learnt
    target = (x[:, 0] > 0.5).long()
    weight = 1 + 9 * torch.rand(n, out, out, generator=gen)
    return x, target, weight


def _tiny():
    torch.manual_seed(0)
    return create_model("small", base_channels=4, dropout=0.0).train()


@pytest.mark.slow
def test_step_loss_is_the_papers_weighted_cross_entropy_of_the_forward_pass():
    model = _tiny()
    x, target, weight = _batch(model)
    torch.manual_seed(1)
    expected = weighted_cross_entropy(model(x), target, weight)
    torch.manual_seed(1)
    got = step_loss(model, x, target, weight, CPU)
    assert got.dtype == torch.float32 and got.ndim == 0
    assert torch.allclose(got, expected)


@pytest.mark.slow
def test_repeated_steps_on_one_batch_lower_its_loss():
    model = _tiny()
    x, target, weight = _batch(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = [float(train_step(model, optimizer, x, target, weight, CPU)) for _ in range(30)]
    assert losses[-1] < 0.7 * losses[0], losses


def test_grad_clip_bounds_the_update_of_plain_sgd():
    model = _tiny()
    x, target, weight = _batch(model)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # update = -gradient
    clip = 1e-3
    loss = step_loss(model, x, target, weight * 100, CPU)  # a large loss: gradients far above the clip
    apply_gradients(optimizer, loss, model.parameters(), grad_clip=clip)
    update = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert 0 < float(update) <= clip * 1.001
