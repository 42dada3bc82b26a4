"""Known-answer tests for lib.runtime."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.runtime import (
    Checkpointer,
    CheckpointError,
    NonFiniteLossError,
    check_finite,
    find_data_root,
    pick_device,
    resolve_profile,
    seed_everything,
    write_claims,
)


def test_seeding_gives_identical_draws_twice():
    seed_everything(7)
    a = (torch.randn(5), np.random.rand(3), __import__("random").random())
    seed_everything(7)
    b = (torch.randn(5), np.random.rand(3), __import__("random").random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    seed_everything(8)
    assert not torch.equal(torch.randn(5), a[0])


def test_seed_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(-1)


def test_profiles():
    assert resolve_profile("smoke").name == "smoke" and resolve_profile("smoke").device == "cpu"
    assert resolve_profile("full").name == "full"
    expected = "full" if torch.cuda.is_available() else "smoke"
    assert resolve_profile("auto").name == expected
    p = resolve_profile("smoke")
    assert p.pick(smoke=1, full=2) == 1 and resolve_profile("full").pick(smoke=1, full=2) == 2
    with pytest.raises(ValueError, match=r"unknown profile 'fast'.*'smoke', 'full', 'auto'"):
        resolve_profile("fast")


def test_pick_device_is_available():
    d = pick_device()
    assert d.type in {"cuda", "mps", "cpu"}
    torch.zeros(1, device=d)


def test_find_data_root_order(tmp_path, monkeypatch):
    env = tmp_path / "env"
    env.mkdir()
    monkeypatch.setenv("DATA_ROOT", str(env))
    assert find_data_root(tmp_path) == tmp_path.resolve()
    assert find_data_root(None) == env.resolve()
    monkeypatch.delenv("DATA_ROOT")
    assert find_data_root(None) == (Path(__file__).resolve().parent.parent / "data")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        find_data_root(tmp_path / "missing")


def _train(steps: int, ckpt: Checkpointer | None, stop_after: int | None = None) -> torch.nn.Linear:
    """A tiny deterministic regression trained with SGD+momentum, checkpointing through ``ckpt``."""
    seed_everything(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(16, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    start = 0
    if ckpt is not None and (found := ckpt.load_latest()) is not None:
        start, state = found
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
    for step in range(start, steps):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if ckpt is not None and ckpt.due(step + 1):
            ckpt.save(step + 1, {"model": model.state_dict(), "opt": opt.state_dict()})
        if stop_after is not None and step + 1 == stop_after:
            break
    return model


def test_resume_reaches_the_same_weights(tmp_path):
    straight = _train(20, None)
    ck = Checkpointer(tmp_path, every=5, meta={"model": "linear", "lr": 0.1})
    _train(20, ck, stop_after=12)  # "crash" after step 12; newest checkpoint is step 10
    assert [p.name for p in ck.paths()] == ["step_5.pt", "step_10.pt"]
    resumed = _train(20, Checkpointer(tmp_path, every=5, meta={"model": "linear", "lr": 0.1}))
    assert torch.equal(straight.weight, resumed.weight) and torch.equal(straight.bias, resumed.bias)


def test_truncated_checkpoint_falls_back_to_previous_good(tmp_path):
    ck = Checkpointer(tmp_path, every=1, meta={"m": 1})
    ck.save(1, {"w": torch.ones(2)})
    newest = ck.save(2, {"w": torch.full((2,), 2.0)})
    newest.write_bytes(newest.read_bytes()[:40])  # truncate
    with pytest.raises(CheckpointError, match="step_2.pt is corrupt"):
        ck.load(newest)
    with pytest.warns(UserWarning, match="step_2.pt"):
        step, state = ck.load_latest()
    assert step == 1 and torch.equal(state["w"], torch.ones(2))
    assert newest.exists()  # nothing is deleted behind the user's back


def test_mismatched_checkpoint_is_refused(tmp_path):
    Checkpointer(tmp_path, every=1, meta={"hidden": 64}).save(1, {"w": torch.ones(1)})
    with pytest.raises(CheckpointError, match=r"step_1.pt was written for another configuration"):
        Checkpointer(tmp_path, every=1, meta={"hidden": 128}).load_latest()


def test_checkpoint_refuses_pickled_objects(tmp_path):
    path = tmp_path / "step_1.pt"
    torch.save({"step": 1, "meta": {}, "state": {"obj": object()}}, path)
    with pytest.raises(CheckpointError, match="corrupt or not a torch checkpoint"):
        Checkpointer(tmp_path, every=1, meta={}).load(path)


def test_check_finite_names_step_and_term():
    check_finite(3, total=1.0, recon=torch.tensor(0.5))
    with pytest.raises(NonFiniteLossError, match=r"step 7: recon=nan"):
        check_finite(7, total=1.0, recon=torch.tensor(float("nan")))
    with pytest.raises(NonFiniteLossError, match=r"triplet=inf"):
        check_finite(1, triplet=float("inf"))


def test_write_claims_roundtrip_and_validation(tmp_path):
    path = tmp_path / "nb" / "claims.json"
    rows = [{"claim": "ours beats PCA", "paper": 59.1, "ours": np.float32(0.5), "holds": True}]
    write_claims(path, rows)
    assert json.loads(path.read_text()) == [{"claim": "ours beats PCA", "paper": 59.1, "ours": 0.5, "holds": True}]
    assert not [p for p in os.listdir(path.parent) if p.endswith(".tmp")]
    with pytest.raises(ValueError, match=r"lacks \['holds'\]"):
        write_claims(path, [{"claim": "x", "paper": 1, "ours": 2}])
    with pytest.raises(ValueError, match="holds must be True, False or None"):
        write_claims(path, [{"claim": "x", "paper": 1, "ours": 2, "holds": "yes"}])
