"""Intervals, learn checks and verdicts: known answers on hand-made and textbook cases."""

from __future__ import annotations

import numpy as np
import pytest

from lib.evaluation.uncertainty import Estimate, bootstrap_ci, learned, paired_difference, seed_spread, verdict


def test_bootstrap_interval_matches_the_normal_theory_width():
    x = np.random.default_rng(1).normal(10.0, 2.0, 4000)
    est = bootstrap_ci(x)
    assert est.value == pytest.approx(x.mean()) and est.n == 4000
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # 0.062
    assert est.low < x.mean() < est.high
    assert (est.high - est.low) / 2 == pytest.approx(half, rel=0.1)
    assert bootstrap_ci(x) == est  # the same seed gives the same interval


def test_bootstrap_of_equal_items_has_zero_width_and_rejects_bad_items():
    assert bootstrap_ci(np.full(5, 0.5)) == Estimate(0.5, 0.5, 0.5, 5)
    with pytest.raises(ValueError, match=r"item 2 is nan"):
        bootstrap_ci(np.array([1.0, 2.0, np.nan]))
    with pytest.raises(ValueError, match="at least 2 items"):
        bootstrap_ci(np.array([1.0]))


def test_paired_difference_sees_what_unpaired_intervals_hide():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 5, 200)  # per-item spread far larger than the effect
    a, b = difficulty + 0.3 + rng.normal(0, 0.1, 200), difficulty
    ia, ib = bootstrap_ci(a), bootstrap_ci(b)
    assert ia.low < ib.high  # the two intervals overlap ...
    d = paired_difference(a, b)
    assert d.low > 0.25 and d.high < 0.35  # ... but the paired difference is clearly 0.3
    with pytest.raises(ValueError, match="same items"):
        paired_difference(a, b[:10])


def test_seed_spread():
    assert seed_spread([1.0, 2.0, 3.0]) == {"values": [1.0, 2.0, 3.0], "mean": 2.0, "sd": 1.0}
    assert seed_spread([4.0])["sd"] is None


def test_learned_needs_a_falling_loss_and_a_real_held_out_gain():
    before = np.zeros(50)
    good = learned("m", [1.0] * 10 + [0.5] * 10, before, np.full(50, 0.2) + np.linspace(0, 0.01, 50), metric="AUC")
    assert good.loss_fell and good.beat_init and good.ok
    assert "learned" in str(good) and "DID NOT" not in str(good)
    flat = learned("m", [0.2, 0.2, 0.2, 0.2], before, np.full(50, 0.2))
    assert not flat.loss_fell and not flat.ok
    noise = learned("m", [1.0, 0.1], before, np.random.default_rng(0).normal(0, 1, 50))
    assert noise.loss_fell and not noise.beat_init and "DID NOT LEARN" in str(noise)
    # lower is better (an error): a drop in error is a gain
    err = learned("m", [3.0, 1.0], np.full(20, 5.0), np.full(20, 4.0) + np.linspace(0, 0.1, 20), higher_is_better=False)
    assert err.gain.value == pytest.approx(0.95) and err.ok


def test_verdict_follows_the_interval_and_the_learn_checks():
    ok = learned("ours", [1.0, 0.5], np.zeros(10), np.linspace(1, 2, 10))
    dead = learned("S&L", [1.0, 1.0], np.zeros(10), np.zeros(10))
    assert verdict(Estimate(0.1, 0.05, 0.15, 30))[0] == "holds"
    assert verdict(Estimate(-0.1, -0.15, -0.05, 30))[0] == "fails"
    v, why = verdict(Estimate(0.1, -0.01, 0.2, 30))
    assert v == "inconclusive" and "contains 0" in why
    v, why = verdict(Estimate(0.1, 0.05, 0.15, 30), [ok, dead])
    assert v == "inconclusive" and why.startswith("S&L did not learn")
    assert verdict(Estimate(0.1, 0.05, 0.15, 30), [ok])[0] == "holds"
