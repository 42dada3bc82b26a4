"""Sequence matching with temporal constraints (Milbich et al. 2017, Eq. 1 and Eq. 2).
Taught in ``notebooks/05_posture_reconciliation.ipynb``.

Conventions used throughout (our reading of the paper):

- ``D`` is an ``(n, m)`` array of squared embedding distances ``||phi(I_j) - phi(I'_k)||^2`` between the
  ``n`` frames of a query sequence S and the ``m`` frames of a target sequence S'.
- A matching ``pi`` is an int array of length ``n`` with values in ``{-1, 0, ..., m-1}``; ``pi[j] = -1``
  marks frame j of S as an outlier, which costs ``outlier_cost`` instead of a distance. The paper maps S
  to ``{0, 1, ..., n'}`` with index 0 for outliers; our ``-1`` is that index 0, and the paper's frame
  ``k`` is our ``k - 1``.
- Eq. 1 (the energy): ``sum_j D[j, pi(j)]`` (or ``outlier_cost``) plus, for every consecutive pair
  ``(j, j+1)`` with *both* frames matched, ``lam1 * [pi(j) > pi(j+1)]`` (going back in time)
  ``+ lam2 * [pi(j) = pi(j+1)]`` (one-to-many) ``+ lam3 * [pi(j) + 1 < pi(j+1)] * (pi(j+1) - pi(j))``
  (skipping frames). A transition into or out of an outlier adds nothing: the paper does not say how
  the pairwise terms treat its index 0, and this is the reading under which an outlier is a pure unary
  choice.

Solvers, which reach the same optimum (the tests check it against brute force):

- :func:`match_sequences_ilp` -- Eq. 2 as written: binary ``z[j, a, b]`` = "frame j goes to a and frame
  j+1 to b", one choice per j, flow conservation between j and j+1, solved exactly by branch-and-cut
  (``mip``/CBC). About seconds for 40 x 40.
- :func:`match_sequences_dp` -- Eq. 1 is a chain over j, so Viterbi-style dynamic programming finds the
  exact optimum, vectorised in numpy or torch (CPU or GPU), also batched over many pairs; the structure of
  the pairwise terms even brings the plain ``O(n m^2)`` recursion down to ``O(n m)``.
- :func:`match_subsequences` -- the paper's practical scheme: cut S' into chunks of about 40 frames
  and match S to each chunk (batched DP, or one ILP per chunk).
"""

from __future__ import annotations

import math
from typing import Literal

import mip
import numpy as np
import torch

MATCHERS = ("dp", "ilp")


class MatchingNotOptimalError(RuntimeError):
    """The ILP solver stopped without proving optimality (time limit or solver failure)."""


def _check_costs(lam1: float, lam2: float, lam3: float, outlier_cost: float) -> None:
    for name, v in (("lam1", lam1), ("lam2", lam2), ("lam3", lam3), ("outlier_cost", outlier_cost)):
        if not (isinstance(v, int | float | np.number) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


def _check_distances(D: np.ndarray | torch.Tensor, batched: bool = False) -> None:
    dims = (3,) if batched else (2,)
    if D.ndim not in dims:
        want = "(B, n, m)" if batched else "(n, m)"
        raise ValueError(f"D must have shape {want} (squared distances), got shape {tuple(D.shape)}")
    if D.shape[-2] == 0 or D.shape[-1] == 0:
        raise ValueError(f"D must have n >= 1 query frames and m >= 1 target frames, got {tuple(D.shape)}")
    finite = torch.isfinite(D).all() if isinstance(D, torch.Tensor) else np.isfinite(D).all()
    if not bool(finite):
        raise ValueError("D contains NaN or inf; expected finite squared distances")
    if bool((D < 0).any()):
        raise ValueError(f"D must be >= 0 (squared distances), got min {float(D.min())}")


def transition_costs(m: int, lam1: float, lam2: float, lam3: float) -> np.ndarray:
    """Pairwise terms of Eq. 1 as an ``(m+1, m+1)`` matrix ``P[a, b]`` for ``pi(j)=a, pi(j+1)=b``.

    Index ``m`` (the last row and column) is the outlier state, whose transitions cost 0.
    """
    a = np.arange(m)[:, None]
    b = np.arange(m)[None, :]
    P = np.zeros((m + 1, m + 1))
    P[:m, :m] = lam1 * (a > b) + lam2 * (a == b) + lam3 * (a + 1 < b) * (b - a)
    return P


def matching_energy(
    pi: np.ndarray, D: np.ndarray, lam1: float, lam2: float, lam3: float, outlier_cost: float
) -> np.ndarray | float:
    """Eq. 1 for one matching ``pi`` ``(n,)`` (returns a float) or a stack ``(K, n)`` (returns ``(K,)``).

    ``D`` ``(n, m)`` squared distances; ``pi`` values in ``{-1, ..., m-1}``, ``-1`` = outlier.
    """
    D = np.asarray(D, np.float64)
    _check_distances(D)
    _check_costs(lam1, lam2, lam3, outlier_cost)
    n, m = D.shape
    pi = np.asarray(pi)
    single = pi.ndim == 1
    pi = np.atleast_2d(pi)
    if pi.ndim != 2 or pi.shape[1] != n or not np.issubdtype(pi.dtype, np.integer):
        raise ValueError(f"pi must be an int array of shape (n,) or (K, n) with n={n}, got {pi.shape} {pi.dtype}")
    if pi.size and (pi.min() < -1 or pi.max() > m - 1):
        raise ValueError(f"pi values must lie in [-1, {m - 1}], got range [{pi.min()}, {pi.max()}]")
    state = np.where(pi < 0, m, pi)  # outlier -> state m
    U = np.concatenate([D, np.full((n, 1), float(outlier_cost))], axis=1)
    energy = U[np.arange(n)[None, :], state].sum(1)
    if n > 1:
        energy = energy + transition_costs(m, lam1, lam2, lam3)[state[:, :-1], state[:, 1:]].sum(1)
    return float(energy[0]) if single else energy


def _prefix_min(x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Running minimum along axis 1: ``out[:, k] = min(x[:, :k+1])``."""
    return torch.cummin(x, 1).values if isinstance(x, torch.Tensor) else np.minimum.accumulate(x, 1)


def _suffix_min(x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Running minimum from the right along axis 1: ``out[:, k] = min(x[:, k:])``."""
    if isinstance(x, torch.Tensor):
        return torch.flip(torch.cummin(torch.flip(x, [1]), 1).values, [1])
    return np.minimum.accumulate(x[:, ::-1], 1)[:, ::-1]


def match_sequences_dp(
    D: np.ndarray | torch.Tensor, lam1: float, lam2: float, lam3: float, outlier_cost: float
) -> np.ndarray | torch.Tensor:
    """Exact minimiser of Eq. 1 by dynamic programming over the chain j = 0..n-1, vectorised over states.

    ``cost[j, b]`` = best energy of frames 0..j with ``pi(j) = b`` (state ``m`` = outlier)
    ``= U[j, b] + min_a (cost[j-1, a] + P[a, b])`` (:func:`transition_costs`). The plain recursion is
    ``O(n m^2)``; here each min over predecessors takes ``O(m)`` because ``P[a, b]`` has five cases: the
    same frame (``lam2``), the next frame (0), an earlier frame (``lam1``: a suffix minimum of ``cost``),
    a skip (``lam3 (b - a)``: a prefix minimum of ``cost[a] - lam3 a``) and the outlier (0). The optimum is
    then traced back from the stored ``cost`` rows.

    ``D``: ``(n, m)`` or a batch ``(B, n, m)`` of squared distances, numpy (CPU) or a torch tensor (the
    forward pass runs on its device, e.g. the GPU; useful for batches). Returns ``pi`` ``(n,)`` or
    ``(B, n)`` int64 (``-1`` = outlier) of the same kind as ``D``; among tied optima any may be returned.
    """
    is_torch = isinstance(D, torch.Tensor)
    _check_distances(D if is_torch else np.asarray(D), batched=D.ndim == 3)
    _check_costs(lam1, lam2, lam3, outlier_cost)
    batched = D.ndim == 3
    D = D.to(torch.float64) if is_torch else np.asarray(D, np.float64)
    D = D if batched else D[None]
    B, n, m = D.shape
    xp = torch if is_torch else np
    costs = D.new_empty((B, n, m + 1)) if is_torch else np.empty((B, n, m + 1))
    costs[:, :, :m] = D  # unaries; the loop adds the best predecessor in place
    costs[:, :, m] = float(outlier_cost)
    ar = torch.arange(m, dtype=torch.float64, device=D.device) if is_torch else np.arange(m, dtype=np.float64)
    for j in range(1, n):
        prev, c = costs[:, j - 1], costs[:, j - 1, :m]
        best = c + lam2  # a == b: one-to-many
        best[:, 1:] = xp.minimum(best[:, 1:], c[:, :-1])  # a == b - 1: free
        best[:, :-1] = xp.minimum(best[:, :-1], _suffix_min(c[:, 1:]) + lam1)  # a > b: back in time
        best[:, 2:] = xp.minimum(best[:, 2:], _prefix_min(c - lam3 * ar)[:, :-2] + lam3 * ar[2:])  # skip
        costs[:, j, :m] += xp.minimum(best, prev[:, m:])  # from an outlier: free
        costs[:, j, m] += xp.amin(prev, 1)  # into an outlier: free
    costs_np = costs.cpu().numpy() if is_torch else costs
    P = transition_costs(m, lam1, lam2, lam3)
    state = np.empty((B, n), np.int64)
    state[:, n - 1] = costs_np[:, n - 1].argmin(1)
    for j in range(n - 1, 0, -1):
        state[:, j - 1] = (costs_np[:, j - 1] + P[:, state[:, j]].T).argmin(1)
    pi = np.where(state == m, -1, state)
    pi = pi if batched else pi[0]
    return torch.from_numpy(pi).to(D.device) if is_torch else pi


def match_sequences_ilp(
    D: np.ndarray,
    lam1: float,
    lam2: float,
    lam3: float,
    outlier_cost: float,
    time_limit: float | None = None,
) -> np.ndarray:
    """Exact minimiser of Eq. 1 through the ILP of Eq. 2, solved by branch-and-cut (``mip``, CBC).

    Variables ``z[j, a, b]`` in {0, 1} for ``j = 0..n-2`` and states ``a, b`` in ``{0..m-1, outlier}``;
    ``sum_{a,b} z[j, a, b] = 1`` and flow conservation ``sum_a z[j, a, b] = sum_c z[j+1, b, c]``.
    The paper writes it as maximising "the sum of all terms of Eq. 1 with z = 1"; since those are costs we
    minimise ``sum z[j, a, b] p[j, a, b]`` with ``p`` = pairwise term + unary of frame j+1 (+ unary of
    frame 0 when j = 0). For ``n = 1`` there are no pairs and the optimum is the cheapest unary.

    ``time_limit`` (seconds, ``None`` = none): if the solver stops without a proven optimum,
    :class:`MatchingNotOptimalError` is raised instead of returning a possibly wrong matching.
    Returns ``pi`` ``(n,)`` int64 (``-1`` = outlier).
    """
    D = np.asarray(D, np.float64)
    _check_distances(D)
    _check_costs(lam1, lam2, lam3, outlier_cost)
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be > 0 seconds or None, got {time_limit!r}")
    n, m = D.shape
    U = np.concatenate([D, np.full((n, 1), float(outlier_cost))], axis=1)  # (n, m+1), state m = outlier
    if n == 1:
        state = np.array([int(U[0].argmin())])
        return np.where(state == m, -1, state)
    p = transition_costs(m, lam1, lam2, lam3)[None] + U[1:, None, :]  # (n-1, a, b)
    p[0] += U[0][:, None]

    model = mip.Model(sense=mip.MINIMIZE, solver_name=mip.CBC)
    model.verbose = 0
    model.threads = 1
    z = model.add_var_tensor((n - 1, m + 1, m + 1), "z", var_type=mip.BINARY)
    model.objective = mip.xsum(float(c) * v for c, v in zip(p.ravel(), z.ravel(), strict=True))
    for j in range(n - 1):
        model += mip.xsum(z[j].ravel()) == 1
    for j in range(n - 2):
        for b in range(m + 1):
            model += mip.xsum(z[j, :, b]) == mip.xsum(z[j + 1, b, :])
    status = model.optimize(max_seconds=time_limit if time_limit is not None else mip.INF)
    if status != mip.OptimizationStatus.OPTIMAL:
        raise MatchingNotOptimalError(
            f"CBC stopped with status {status.name} on a {n} x {m} matching (time_limit={time_limit}); "
            "raise time_limit, use shorter sub-sequences, or use match_sequences_dp"
        )
    x = np.array([v.x for v in z.ravel()]).reshape(n - 1, m + 1, m + 1) > 0.5
    choice = x.reshape(n - 1, -1).argmax(1)
    state = np.empty(n, np.int64)
    state[0] = choice[0] // (m + 1)
    state[1:] = choice % (m + 1)
    return np.where(state == m, -1, state)


def match_sequences(
    D: np.ndarray,
    lam1: float,
    lam2: float,
    lam3: float,
    outlier_cost: float,
    matcher: Literal["dp", "ilp"] = "dp",
) -> np.ndarray:
    """Eq. 1 optimum for ``(n, m)`` ``D`` by ``matcher`` (``"dp"`` or ``"ilp"``) -> ``pi`` ``(n,)``."""
    if matcher == "dp":
        return match_sequences_dp(np.asarray(D), lam1, lam2, lam3, outlier_cost)
    if matcher == "ilp":
        return match_sequences_ilp(D, lam1, lam2, lam3, outlier_cost)
    raise ValueError(f"unknown matcher {matcher!r}; expected one of {list(MATCHERS)}")


def split_target(m: int, chunk: int = 40) -> np.ndarray:
    """Boundaries ``(k+1,)`` cutting ``m`` target frames into ``k = max(1, round(m / chunk))`` near-equal
    sub-sequences (lengths differ by at most one): chunk ``i`` is ``[b[i], b[i+1])``."""
    if m < 1 or chunk < 1:
        raise ValueError(f"need m >= 1 target frames and chunk >= 1, got m={m}, chunk={chunk}")
    k = max(1, round(m / chunk))
    return np.linspace(0, m, k + 1).round().astype(np.int64)


def match_subsequences(
    D: np.ndarray | torch.Tensor,
    lam1: float,
    lam2: float,
    lam3: float,
    outlier_cost: float,
    chunk: int = 40,
    matcher: Literal["dp", "ilp"] = "dp",
) -> np.ndarray:
    """Match all of S to each sub-sequence of S' (paper Sect. 2.2) -> ``(k, n)`` int64 matchings.

    Entries are *global* frame indices of S' (within chunk ``i`` of :func:`split_target`) or ``-1``.
    With ``"dp"`` all chunks are solved in one batched call (short chunks are padded with columns dearer than
    an outlier, which are never chosen), in numpy for a numpy ``D`` and in torch on ``D``'s device for a
    tensor; with ``"ilp"`` one exact ILP per chunk.
    """
    if matcher not in MATCHERS:
        raise ValueError(f"unknown matcher {matcher!r}; expected one of {list(MATCHERS)}")
    n, m = D.shape
    bounds = split_target(m, chunk)
    if matcher == "ilp":
        D = D.cpu().numpy() if isinstance(D, torch.Tensor) else np.asarray(D)
        out = [
            match_sequences_ilp(D[:, a:b], lam1, lam2, lam3, outlier_cost)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        local = np.stack(out)
    else:
        is_torch = isinstance(D, torch.Tensor)
        D = D.to(torch.float64) if is_torch else np.asarray(D, np.float64)
        _check_distances(D)
        # A padding column costing more than an outlier is never chosen: swapping it for the outlier state
        # lowers the unary term and cannot raise the pairwise terms (outlier transitions cost 0).
        width = int(np.diff(bounds).max())
        shape, pad = (len(bounds) - 1, n, width), float(outlier_cost) + 1.0
        padded = D.new_full(shape, pad) if is_torch else np.full(shape, pad)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            padded[i, :, : b - a] = D[:, a:b]
        local = match_sequences_dp(padded, lam1, lam2, lam3, outlier_cost)  # numpy on the CPU, torch where D is
        local = local.cpu().numpy() if is_torch else local
    return np.where(local < 0, -1, local + bounds[:-1, None])
