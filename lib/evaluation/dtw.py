"""Dynamic time warping on similarity maps (Skip-Pose Vectors, Shirakawa & Kozakaya 2019, Sec. 3.2).

A query sequence of ``Tq`` per-frame features and a dictionary sequence of ``Td`` features give a
similarity map ``S`` of shape ``(Tq, Td)`` (cosine similarities, Eq. 6). A path runs monotonically from
``(0, 0)`` to ``(Tq - 1, Td - 1)`` with steps ``(1, 0)``, ``(0, 1)``, ``(1, 1)``. Two readings of "the best
alignment":

- ``"similarity"``, the paper's literal Eq. 7: the path that *maximises* the summed similarity; the score
  is that sum. The recurrence is ``D[i, j] = S[i, j] + max(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1])``.
  With positive similarities a longer path always collects more, so the best path avoids diagonal steps
  (a staircase through the map) and the score grows with ``Tq + Td``.
- ``"cost"``, the classic alignment it intends: the path that *minimises* the summed cost ``1 - S``, the
  same recurrence on ``S - 1``; a diagonal step now costs one cell where the staircase costs two, so two
  identical sequences align on the diagonal. The score is the mean similarity along that path,
  ``1 - cost / L`` with ``L`` the path's length (cells), comparable across lengths.

- :func:`dtw_similarity` -- the reference for Eq. 7: one map, score and path (numpy).
- :func:`dtw_cost` -- the reference for the cost mode, through :func:`dtw_similarity` on ``S - 1``.
- :func:`dtw_scores` -- all query x dictionary scores in either mode: one matrix product per query for its
  maps, the recurrence compiled with numba (``benchmarks/bench_dtw.py`` times it).

Action recognition from the scores (1-NN accuracy, per-class average precision) is in :mod:`lib.evaluation.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from lib.evaluation.metrics import require_finite


def dtw_similarity(sim: np.ndarray) -> tuple[float, np.ndarray]:
    """Best monotone alignment of a ``(Tq, Td)`` similarity map.

    Returns ``(score, path)``: ``score`` the maximal sum of ``sim`` along a path from ``(0, 0)`` to
    ``(Tq - 1, Td - 1)`` with steps ``(1, 0)``, ``(0, 1)``, ``(1, 1)``; ``path`` the ``(L, 2)`` int array of
    the ``(i, j)`` cells on it, in order. Ties prefer the diagonal step, then ``(1, 0)``. ``sim`` must be
    finite.
    """
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or min(sim.shape) < 1:
        raise ValueError(f"expected a non-empty (Tq, Td) similarity map, got shape {sim.shape}")
    require_finite(sim, "sim", ("query frame", "dictionary frame"))
    tq, td = sim.shape
    acc = np.full((tq + 1, td + 1), -np.inf)
    acc[0, 0] = 0.0
    for i in range(tq):
        for j in range(td):
            acc[i + 1, j + 1] = sim[i, j] + max(acc[i, j], acc[i, j + 1], acc[i + 1, j])
    acc[0, 0] = -np.inf  # only (0, 0) may start the path; keep the backtrack inside the map
    path = [(tq - 1, td - 1)]
    i, j = tq, td
    while (i, j) != (1, 1):
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))  # diagonal first on ties
        i, j = max(steps, key=lambda ij: acc[ij])
        path.append((i - 1, j - 1))
    return float(acc[tq, td]), np.array(path[::-1], dtype=np.int64)


MODES = ("similarity", "cost")


def dtw_cost(sim: np.ndarray) -> tuple[float, np.ndarray]:
    """Classic DTW of a ``(Tq, Td)`` similarity map: the path minimising the summed cost ``1 - sim``.

    Returns ``(score, path)``: ``score`` the mean similarity along the path, ``1 - cost / L`` with ``L`` its
    number of cells; ``path`` the ``(L, 2)`` cells in order. Minimising ``sum(1 - sim)`` is maximising
    ``sum(sim - 1)``, so this is :func:`dtw_similarity` on ``sim - 1`` (same steps, same tie order).
    """
    shifted, path = dtw_similarity(np.asarray(sim, dtype=np.float64) - 1.0)
    return 1.0 + shifted / len(path), path


@numba.njit(cache=True, nogil=True)
def _dtw_recurrence(sim: np.ndarray, shift: float, mean_on_path: bool) -> float:
    """The DP of :func:`dtw_similarity` on ``sim - shift`` (``(Tq, Td)`` float32, may be a column slice),
    row by row with two rows of ``Td + 1`` float64 accumulators. With ``mean_on_path`` each cell also
    carries its best path's length, chosen with the reference's tie order (diagonal, then ``(1, 0)``, then
    ``(0, 1)``; written as selects, not branches, which random-looking maps mispredict), and the result is
    ``shift + D / L``; otherwise it is ``D``."""
    tq, td = sim.shape
    prev, cur = np.full(td + 1, -np.inf), np.empty(td + 1)
    len_prev, len_cur = np.zeros(td + 1), np.zeros(td + 1)
    prev[0] = 0.0  # virtual D[-1, -1] = 0 for row 0 only: the path starts at (0, 0)
    for i in range(tq):
        cur[0] = -np.inf
        left, len_left = -np.inf, 0.0
        if mean_on_path:
            for j in range(td):
                diag, up = prev[j], prev[j + 1]
                diag_wins = diag >= up
                best = diag if diag_wins else up
                len_best = len_prev[j] if diag_wins else len_prev[j + 1]
                not_left = best >= left
                len_left = (len_best if not_left else len_left) + 1.0
                left = (best if not_left else left) + (sim[i, j] - shift)
                cur[j + 1] = left
                len_cur[j + 1] = len_left
        else:
            for j in range(td):
                left = max(prev[j], prev[j + 1], left) + sim[i, j]
                cur[j + 1] = left
        prev, cur = cur, prev
        len_prev, len_cur = len_cur, len_prev
    return shift + prev[td] / len_prev[td] if mean_on_path else prev[td]


@numba.njit(parallel=True, cache=True)
def _dtw_all_pairs(
    q_frames: np.ndarray,
    q_starts: np.ndarray,
    d_frames_t: np.ndarray,
    d_starts: np.ndarray,
    cost: bool,
    out: np.ndarray,
) -> None:
    """``out[i, k]`` = the DTW score of query ``i`` (frames ``q_starts[i]:q_starts[i + 1]`` of ``q_frames``
    ``(sum Tq, f)``) against dictionary sequence ``k`` (columns ``d_starts[k]:d_starts[k + 1]`` of
    ``d_frames_t`` ``(f, sum Td)``). The queries are shared among the threads; each thread makes its query's
    maps with every dictionary frame in one matrix product, ``(Tq, sum Td)`` float32."""
    shift = 1.0 if cost else 0.0
    for i in numba.prange(len(q_starts) - 1):
        sim = np.dot(q_frames[q_starts[i] : q_starts[i + 1]], d_frames_t)
        for k in range(len(d_starts) - 1):
            out[i, k] = _dtw_recurrence(sim[:, d_starts[k] : d_starts[k + 1]], shift, cost)


def _as_arrays(seqs: Sequence[np.ndarray | torch.Tensor], name: str) -> list[np.ndarray]:
    out = []
    for k, x in enumerate(seqs):
        a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
        if a.ndim != 2 or a.shape[0] < 1:
            raise ValueError(f"{name}[{k}] must be a non-empty (T, d) feature array, got shape {a.shape}")
        require_finite(a, f"{name}[{k}]", ("frame", "feature"), "in float32")
        out.append(a)
    if not out:
        raise ValueError(f"{name} is empty; expected a list of (T, d) feature arrays")
    if len({a.shape[1] for a in out}) != 1:
        raise ValueError(f"{name} mixes feature sizes {sorted({a.shape[1] for a in out})}")
    return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), first divided by their largest magnitude so
    that the float32 norm cannot overflow."""
    x = x / np.maximum(np.abs(x).max(axis=1, keepdims=True), np.finfo(np.float32).tiny)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.finfo(np.float32).tiny)


def dtw_scores(
    query_feats: Sequence[np.ndarray | torch.Tensor],
    dict_feats: Sequence[np.ndarray | torch.Tensor],
    cosine: bool = True,
    mode: str = "similarity",
) -> np.ndarray:
    """DTW scores of every query against every dictionary sequence: ``(n_q, n_d)`` float64, larger = closer.

    ``query_feats[i]`` is ``(Tq_i, d)``, ``dict_feats[j]`` is ``(Td_j, d)`` (numpy or torch on any device),
    finite in float32. The map of a pair is the cosine similarity of their frames (a zero frame has
    similarity 0 with any frame), or their dot product if ``cosine`` is False; each score equals
    ``dtw_similarity(map)[0]`` (``mode="similarity"``, Eq. 7) or ``dtw_cost(map)[0]`` (``mode="cost"``, the
    mean similarity along the least-cost path); a similarity that overflows float32 is an error.
    Compiled with numba, on the CPU: the queries are shared among numba's threads (``NUMBA_NUM_THREADS``,
    default every core; the BLAS runs one thread per query meanwhile), each making one query's maps with every
    dictionary frame in one float32 matrix product (so the memory peak is threads x longest query x all
    dictionary frames x 4 bytes) and running the recurrence of each map in float64
    (``benchmarks/bench_dtw.py`` times it).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    q = _as_arrays(query_feats, "query_feats")
    d = _as_arrays(dict_feats, "dict_feats")
    if q[0].shape[1] != d[0].shape[1]:
        raise ValueError(f"query features are {q[0].shape[1]}-d but dictionary features {d[0].shape[1]}-d")
    if cosine:
        q, d = [_unit_rows(a) for a in q], [_unit_rows(a) for a in d]
    starts = [np.concatenate([[0], np.cumsum([len(a) for a in x])]).astype(np.int64) for x in (q, d)]
    scores = np.empty((len(q), len(d)), dtype=np.float64)
    with threadpool_limits(1, user_api="blas"):  # idle BLAS threads spinning beside numba's cost a third
        _dtw_all_pairs(
            np.concatenate(q), starts[0], np.ascontiguousarray(np.concatenate(d).T), starts[1], mode == "cost", scores
        )
    require_finite(scores, "DTW scores", ("query", "dictionary sequence"), "float32 overflow: scale the features down")
    return scores
