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
    format_estimate,
    load_recorded,
    pick_device,
    recorded_markdown,
    resolve_profile,
    run_provenance,
    seed_everything,
    source_fingerprint,
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


def test_checkpoint_save_refuses_state_it_cannot_load_back(tmp_path):
    ck = Checkpointer(tmp_path, every=1, meta={})
    with pytest.raises(CheckpointError, match=r"'extra.neighbours' is a ndarray.*torch.from_numpy"):
        ck.save(1, {"w": torch.ones(1), "extra": {"neighbours": np.zeros(3)}})
    assert ck.paths() == []  # nothing half-written
    ck.save(1, {"w": torch.ones(1), "extra": {"epoch": 2, "names": ["a"], "n": None}})
    assert ck.load_latest()[1]["extra"]["epoch"] == 2


def test_pruning_keeps_the_newest_readable_and_never_the_file_just_written(tmp_path):
    ck = Checkpointer(tmp_path, every=10, meta={}, keep=1)
    ck.save(10, {"w": torch.ones(1)})
    corrupt = ck.save(20, {"w": torch.ones(1)})
    corrupt.write_bytes(b"garbage")  # a corrupt newest file must not make every new save vanish
    written = ck.save(30, {"w": torch.full((1,), 3.0)})
    assert written.exists() and not (tmp_path / "step_10.pt").exists()
    assert ck.load_latest()[0] == 30
    # keep=2 keeps the two newest readable ones by modification time
    ck2 = Checkpointer(tmp_path / "b", every=1, meta={}, keep=2)
    for step in (1, 2, 3):
        ck2.save(step, {"w": torch.ones(1)})
    assert [p.name for p in ck2.paths()] == ["step_2.pt", "step_3.pt"]


def test_checkpoints_written_by_other_code_are_not_resumed(tmp_path):
    old, new = tmp_path / "old_code.py", tmp_path / "new_code.py"
    old.write_text("x = 1\n")
    new.write_text("x = 2\n")
    assert source_fingerprint([old]) != source_fingerprint([new]) and len(source_fingerprint([old])) == 16
    Checkpointer(tmp_path / "ck", every=1, meta={"m": 1}, sources=[old]).save(5, {"w": torch.ones(1)})
    again = Checkpointer(tmp_path / "ck", every=1, meta={"m": 1}, sources=[old])
    assert again.load_latest()[0] == 5
    edited = Checkpointer(tmp_path / "ck", every=1, meta={"m": 1}, sources=[new])
    with pytest.warns(UserWarning, match="written by other code"):
        assert edited.load_latest() is None  # retrain, do not report "trained in 0 s"


def test_interrupted_save_leaves_no_temporary_file_behind(tmp_path):
    (tmp_path / ".step_3.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    Checkpointer(tmp_path, every=1, meta={})
    assert list(tmp_path.iterdir()) == []


def test_claims_schema_roundtrip_validation_and_rendering(tmp_path):
    prov = run_provenance(resolve_profile("smoke"), [0], {"epochs": 3, "ratio": np.float32(0.5)})
    assert prov["profile"] == "smoke" and prov["seeds"] == [0] and prov["parameters"]["ratio"] == 0.5
    assert prov["device"] == "cpu (CPU)" and len(prov["commit"]) >= 7
    row = {"claim": "ours > PCA", "paper": "59.1 vs 51.0", "dataset": "synthetic",
           "ours": {"value": np.float64(0.62), "ci95": [0.55, 0.69], "n": 40}, "verdict": "holds",
           "reason": "difference above 0"}  # fmt: skip
    path = write_claims(
        tmp_path / "nb" / "claims.json", [row], prov, tables={"acc": [{"T": 2, "acc": np.float32(0.5)}]}
    )
    doc = json.loads(path.read_text())
    assert doc["schema"] == 2 and doc["claims"][0]["ours"] == {"value": 0.62, "ci95": [0.55, 0.69], "n": 40}
    assert doc["tables"] == {"acc": [{"T": 2, "acc": 0.5}]} and doc["run"]["seeds"] == [0]
    assert not [p for p in os.listdir(path.parent) if p.endswith(".tmp")]
    with pytest.raises(ValueError, match=r"lacks \['verdict'\]"):
        write_claims(path, [{k: v for k, v in row.items() if k != "verdict"}], prov)
    with pytest.raises(ValueError, match="verdict must be one of"):
        write_claims(path, [row | {"verdict": "yes"}], prov)
    with pytest.raises(ValueError, match="low <= high"):
        write_claims(path, [row | {"ours": {"value": 1, "ci95": [2, 1], "n": 3}}], prov)
    with pytest.raises(ValueError, match="not reproducible here"):
        write_claims(path, [row | {"ours": None}], prov)
    assert format_estimate(doc["claims"][0]["ours"]) == "0.62 [0.55, 0.69] (n=40)"
    # recorded under results/<notebook>/<profile>.json and rendered for the closing cells
    results = tmp_path / "results"
    (results / "06_x").mkdir(parents=True)
    (results / "06_x" / "full.json").write_text(json.dumps(doc | {"wall_s": 61.0}))
    assert set(load_recorded("06_x", results)) == {"full"}
    md = recorded_markdown("06_x", "full", results)
    assert "| ours > PCA | 59.1 vs 51.0 | synthetic | 0.62 [0.55, 0.69] (n=40) | holds |" in md
    assert "**acc**" in md and "61 s" in md
    assert "No `smoke` run of `06_x` is recorded yet" in recorded_markdown("06_x", "smoke", results)
