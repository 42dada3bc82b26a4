"""The shared training machinery: resumable loops, per-step randomness, sequence groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lib.runtime import NonFiniteLossError
from lib.training import resumable_training, sequence_groups, step_generators


def _run(total: int, checkpoint_dir, crash_at: int | None = None) -> tuple[nn.Linear, dict[str, list[float]]]:
    """Fit a line to random points drawn per step from (seed, step); ``crash_at`` raises at that step."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step_fn(step: int) -> dict[str, float]:
        if step == crash_at:
            raise KeyboardInterrupt
        _, gen = step_generators(7, step)
        x = torch.randn(8, 3, generator=gen)
        loss = (model(x).squeeze(1) - x.sum(1)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    history = resumable_training({"model": model, "opt": opt}, total, step_fn, checkpoint_dir, {"m": 1}, every=4)
    return model, history


def test_resumable_training_resumes_to_the_uninterrupted_result(tmp_path):
    straight, h_straight = _run(12, None)
    with pytest.raises(KeyboardInterrupt):
        _run(12, tmp_path, crash_at=10)  # the newest checkpoint holds step 8
    resumed, h_resumed = _run(12, tmp_path)
    assert torch.equal(straight.weight, resumed.weight) and torch.equal(straight.bias, resumed.bias)
    assert h_resumed == h_straight and len(h_straight["loss"]) == 12
    assert h_straight["loss"][-1] < h_straight["loss"][0]


def test_resumable_training_stops_on_a_nan_loss_naming_the_step():
    with pytest.raises(NonFiniteLossError, match="step 2"):
        resumable_training({}, 5, lambda step: {"loss": float("nan") if step == 2 else 1.0}, None, {})


def test_step_generators_depend_on_seed_and_step_only():
    a_rng, a_gen = step_generators(3, 5)
    b_rng, b_gen = step_generators(3, 5)
    assert a_rng.integers(1 << 30) == b_rng.integers(1 << 30)
    assert torch.equal(torch.rand(4, generator=a_gen), torch.rand(4, generator=b_gen))
    c_rng, _ = step_generators(3, 6)
    assert step_generators(3, 5)[0].integers(1 << 30) != c_rng.integers(1 << 30)


def test_sequence_groups_in_order_of_first_appearance():
    groups = sequence_groups(np.array([4, 4, 2, 2, 2, 9]))
    assert [g.tolist() for g in groups] == [[0, 1], [2, 3, 4], [5]]
