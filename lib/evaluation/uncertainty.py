"""How sure a number is, whether a model learned, and which verdict a claim gets.

- :class:`Estimate`, :func:`bootstrap_ci` -- a statistic over evaluation items (queries, anchors, test
  frames) with its 95% bootstrap interval (``scipy.stats.bootstrap``, percentile method, seeded).
- :func:`paired_difference` -- the mean difference of two methods scored on the *same* items, with its
  interval: the right test when two models answer the same queries.
- :func:`seed_spread` -- mean and standard deviation of one number over several training seeds.
- :func:`learned`, :class:`LearnCheck` -- did a training work: its loss fell and its held-out metric beat
  the initialisation's by more than the uncertainty.
- :func:`verdict` -- ``holds`` / ``fails`` / ``inconclusive`` from the interval of a difference and the
  learn checks of the compared models: never a "yes" from noise or from a model that did not learn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """``value`` of a statistic over ``n`` items with its ``confidence`` interval ``[low, high]``."""

    value: float
    low: float
    high: float
    n: int

    def to_json(self) -> dict:
        """The claims-schema form ``{"value", "ci95", "n"}``."""
        return {"value": self.value, "ci95": [self.low, self.high], "n": self.n}

    def __str__(self) -> str:
        return f"{self.value:.3g} [{self.low:.3g}, {self.high:.3g}] (n={self.n})"


def _finite_items(items: np.ndarray, name: str) -> np.ndarray:
    items = np.asarray(items, dtype=np.float64)
    if items.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of per-item values, got shape {items.shape}")
    if len(items) < 2:
        raise ValueError(f"{name}: a bootstrap interval needs at least 2 items, got {len(items)}")
    bad = np.flatnonzero(~np.isfinite(items))
    if len(bad):
        raise ValueError(f"{name}: item {int(bad[0])} is {items[bad[0]]} ({len(bad)} non-finite items)")
    return items


def bootstrap_ci(
    items: np.ndarray,
    statistic: Callable[..., float] = np.mean,
    n_resamples: int = 2000,
    seed: int = 0,
    name: str = "bootstrap_ci",
) -> Estimate:
    """``statistic`` of per-item values ``items`` ``(n,)`` with its 95% percentile-bootstrap interval.

    ``statistic(sample, axis=-1)`` must accept an ``axis`` (numpy reductions do). Deterministic in ``seed``;
    all-equal items give a zero-width interval.
    """
    items = _finite_items(items, name)
    value = float(statistic(items, axis=-1))
    if np.ptp(items) == 0:
        return Estimate(value, value, value, len(items))
    res = stats.bootstrap(
        (items,), statistic, n_resamples=n_resamples, confidence_level=CONFIDENCE, method="percentile",
        vectorized=True, random_state=np.random.default_rng(seed),
    )  # fmt: skip
    ci = res.confidence_interval
    return Estimate(value, float(ci.low), float(ci.high), len(items))


def paired_difference(a: np.ndarray, b: np.ndarray, seed: int = 0) -> Estimate:
    """Mean of ``a - b`` over the same items (``a``, ``b`` ``(n,)``: two methods' scores on each item)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference needs the same items: shapes {a.shape} and {b.shape}")
    return bootstrap_ci(a - b, seed=seed, name="paired_difference")


def seed_spread(values: Sequence[float]) -> dict:
    """One number over training seeds -> ``{"values", "mean", "sd"}`` (sample sd, ddof 1; None for one seed)."""
    v = np.asarray(values, np.float64)
    if v.ndim != 1 or len(v) == 0 or not np.isfinite(v).all():
        raise ValueError(f"seed_spread needs finite per-seed values, got {values!r}")
    return {"values": v.tolist(), "mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else None}


@dataclass(frozen=True)
class LearnCheck:
    """Whether a training worked: ``loss_fell`` and the held-out ``gain`` over the initialisation
    (positive = better) excluding 0 from its interval."""

    name: str
    loss_start: float
    loss_end: float
    loss_fell: bool
    gain: Estimate
    metric: str

    @property
    def beat_init(self) -> bool:
        return self.gain.low > 0

    @property
    def ok(self) -> bool:
        return self.loss_fell and self.beat_init

    def __str__(self) -> str:
        yes = {True: "yes", False: "NO"}
        return (
            f"{self.name}: loss {self.loss_start:.4g} -> {self.loss_end:.4g} (fell: {yes[self.loss_fell]}); "
            f"held-out {self.metric} gain over init {self.gain} (beat init: {yes[self.beat_init]}) -> "
            f"{'learned' if self.ok else 'DID NOT LEARN'}"
        )


def learned(
    name: str,
    losses: Sequence[float],
    before: np.ndarray,
    after: np.ndarray,
    higher_is_better: bool = True,
    metric: str = "metric",
    seed: int = 0,
) -> LearnCheck:
    """Did model ``name`` learn? ``losses``: its training losses in order; ``before``/``after``: its per-item
    held-out metric (the same items) at initialisation and after training.

    The loss fell when the mean of its last tenth is below the mean of its first tenth; the model beat its
    initialisation when the 95% interval of the paired gain (``after - before``, sign-flipped when lower is
    better) lies above 0.
    """
    losses = np.asarray(losses, np.float64)
    if losses.ndim != 1 or len(losses) < 2 or not np.isfinite(losses).all():
        raise ValueError(f"{name}: losses must be >= 2 finite values in training order, got shape {losses.shape}")
    k = max(1, len(losses) // 10)
    start, end = float(losses[:k].mean()), float(losses[-k:].mean())
    sign = 1.0 if higher_is_better else -1.0
    gain = paired_difference(sign * np.asarray(after, np.float64), sign * np.asarray(before, np.float64), seed)
    return LearnCheck(name, start, end, end < start, gain, metric)


def verdict(difference: Estimate, checks: Sequence[LearnCheck] = ()) -> tuple[str, str]:
    """``(verdict, reason)`` for a claim "ours is better", given the interval of ``ours - theirs`` (signed so
    that positive favours the claim) and the learn checks of the trained models it compares.

    ``holds`` when the interval lies above 0, ``fails`` when below, else ``inconclusive``; always
    ``inconclusive`` when a compared model did not learn.
    """
    failed = [c.name for c in checks if not c.ok]
    if failed:
        return "inconclusive", f"{', '.join(failed)} did not learn (see the learn checks)"
    interval = f"difference {difference}"
    if difference.low > 0:
        return "holds", f"{interval} lies above 0"
    if difference.high < 0:
        return "fails", f"{interval} lies below 0"
    return "inconclusive", f"{interval} contains 0"
