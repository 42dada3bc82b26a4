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
- :func:`dtw_scores` -- all query x dictionary scores at once in either mode, batched with torch (CPU or
  GPU): an anti-diagonal wavefront over many padded maps (``benchmarks/bench_dtw.py`` times it).

Action recognition from the scores (1-NN accuracy, per-class average precision) is in :mod:`lib.evaluation.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

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


FUSED_MIN_PAIRS = 100  # from this many pairs in a group pair on, each diagonal's similarities come from one bmm


def _dtw_wavefront(a: torch.Tensor, b: torch.Tensor, len_a: np.ndarray, len_b: np.ndarray, mode: str) -> torch.Tensor:
    """DTW scores ``(na, nb)`` of all pairs of padded sequences ``a`` ``(na, ta, f)`` and ``b`` ``(nb, tb, f)``.

    The map of a pair is ``S[i, j] = <a_i, b_j>`` (minus 1 in the cost mode, so both modes maximise a sum);
    ``len_a``, ``len_b`` are the true lengths. The recurrence needs only anti-diagonals ``k - 1`` and
    ``k - 2``, so each step is a few elementwise ops over all pairs at once. The similarities of
    anti-diagonal ``k`` (cells ``(i, k - i)``) of every map are added to the best predecessors in one
    batched product, ``baddbmm`` over the rows ``i`` of ``(na, f) x (f, nb)`` blocks, when there are at
    least :data:`FUSED_MIN_PAIRS` pairs: the maps are never stored (the product of all of them at once was
    two thirds of the time: an allocation of up to ``frames_per_chunk ** 2`` floats and strided reads).
    With fewer pairs (a few long sequences) those blocks are too small for a fast product, and all maps
    come from one matrix product with ``b`` reversed in time, whose anti-diagonal ``k`` is one strided
    diagonal view. In the cost mode each cell also carries the length of its best
    path, with the tie order of :func:`dtw_similarity` (diagonal, then ``(1, 0)``, then ``(0, 1)``),
    selected by 0/1 masks through ``torch.lerp`` (``torch.where`` is several times slower on the CPU).
    Padding lies below and to the right of each true map and never reaches the cell
    ``(len_a - 1, len_b - 1)`` that is read out.
    """
    (na, ta, f), (nb, tb, _) = a.shape, b.shape
    dev, dt = a.device, a.dtype
    n_pairs = na * nb
    cost = mode == "cost"
    neg = torch.finfo(dt).min / 4
    rows = np.repeat(len_a, nb)  # true sizes of pair p = ia * nb + ib
    cols = np.tile(len_b, na)
    finishing = [[] for _ in range(ta + tb - 1)]  # pairs whose last cell lies on diagonal k
    for p, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        finishing[r + c - 2].append(p)
    fused = n_pairs >= FUSED_MIN_PAIRS
    if fused:
        a_t = a.transpose(0, 1).contiguous()  # (ta, na, f)
        b_rev = b.flip(1).permute(1, 2, 0).contiguous()  # (tb, f, nb): [m] holds b[:, tb - 1 - m].T
    else:
        a_t = a.transpose(0, 1).reshape(ta * na, f)
        b_rev = b.flip(1).transpose(0, 1).reshape(tb * nb, f)  # row m * nb + ib holds b[ib, tb - 1 - m]
        sim = (a_t @ b_rev.T).view(ta, na, tb, nb)  # cell (i, j) of pair (ia, ib) at [i, ia, tb - 1 - j, ib]
        if cost:
            sim -= 1.0
    # position p of a buffer holds row i = p - 1 of a diagonal; position 0 is the boundary (row -1)
    prev2, prev1, cur = (torch.full((ta + 1, n_pairs), neg, dtype=dt, device=dev) for _ in range(3))
    prev2[0] = 0.0  # virtual D[-1, -1] = 0 so the path starts at (0, 0)
    if cost:  # path lengths in cells (same layout) and a 0/1 mask
        len2, len1, len_cur = (torch.zeros(ta + 1, n_pairs, dtype=dt, device=dev) for _ in range(3))
        pick = torch.empty(ta, n_pairs, dtype=dt, device=dev)
    best_buf = torch.empty(ta, n_pairs, dtype=dt, device=dev)
    out = torch.empty(n_pairs, dtype=dt, device=dev)
    for k in range(ta + tb - 1):
        lo, hi = max(0, k - tb + 1), min(k, ta - 1)  # rows of the cells of diagonal k inside the map
        n = hi - lo + 1
        diag, up, left = prev2[lo : hi + 1], prev1[lo : hi + 1], prev1[lo + 1 : hi + 2]
        best = torch.maximum(diag, up, out=best_buf[:n])
        if cost:
            m = pick[:n]
            torch.ge(diag, up, out=m)  # 1 where the diagonal step wins (ties included)
            steps = torch.lerp(len1[lo : hi + 1], len2[lo : hi + 1], m)  # lengths are integers: exact
            torch.gt(left, best, out=m)  # 1 where (0, 1) is strictly better
            steps.lerp_(len1[lo + 1 : hi + 2], m)
            torch.add(steps, 1.0, out=len_cur[lo + 1 : hi + 2])
        torch.maximum(best, left, out=best)
        target = cur[lo + 1 : hi + 2].view(n, na, nb)
        if fused:  # rows lo..hi of a against b's frames k - lo .. k - hi, i.e. reversed frames m0 .. m0 + n - 1
            if cost:
                best -= 1.0
            m0 = tb - 1 - k + lo
            torch.baddbmm(best.view(n, na, nb), a_t[lo : hi + 1], b_rev[m0 : m0 + n], out=target)
        else:  # cell (i, k - i) lies at [i, :, tb - 1 - k + i, :]: the diagonal of offset tb - 1 - k over dims 0, 2
            s = torch.diagonal(sim, offset=tb - 1 - k, dim1=0, dim2=2).permute(2, 0, 1)  # (n, na, nb)
            torch.add(best.view(n, na, nb), s, out=target)
        cur[0] = neg
        if hi + 2 <= ta:
            cur[hi + 2] = neg  # row hi + 1 is not on diagonal k (stale value of an older diagonal)
        if finishing[k]:
            idx = torch.as_tensor(finishing[k], device=dev)
            row = torch.as_tensor(rows[finishing[k]], device=dev)
            out[idx] = cur[row, idx] / len_cur[row, idx] + 1.0 if cost else cur[row, idx]
        prev2, prev1, cur = prev1, cur, prev2
        if cost:
            len2, len1, len_cur = len1, len_cur, len2
    return out.view(na, nb)


def _as_tensors(seqs: Sequence[np.ndarray | torch.Tensor], name: str, device: torch.device) -> list:
    out = []
    for k, x in enumerate(seqs):
        t = torch.as_tensor(x, device=device, dtype=torch.float32)
        if t.ndim != 2 or t.shape[0] < 1:
            raise ValueError(f"{name}[{k}] must be a non-empty (T, d) feature array, got shape {tuple(t.shape)}")
        require_finite(t, f"{name}[{k}]", ("frame", "feature"), "in float32")
        out.append(t)
    if not out:
        raise ValueError(f"{name} is empty; expected a list of (T, d) feature arrays")
    if len({t.shape[1] for t in out}) != 1:
        raise ValueError(f"{name} mixes feature sizes {sorted({t.shape[1] for t in out})}")
    return out


def _unit_rows(t: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (a zero row stays zero), first divided by their largest magnitude so
    that the float32 norm cannot overflow."""
    return torch.nn.functional.normalize(t / t.abs().amax(1, keepdim=True).clamp_min(torch.finfo(t.dtype).tiny), dim=1)


def _chunks(lengths: np.ndarray, frames_per_chunk: int, spread: float) -> list[np.ndarray]:
    """Indices sorted by length, cut into chunks whose ``count * max length`` stays near the budget and whose
    longest sequence is at most ``spread`` times the shortest (padding costs as much as real frames)."""
    order = np.argsort(lengths, kind="stable")
    chunks, start = [], 0
    while start < len(order):
        stop = start + 1
        while (
            stop < len(order)
            and (stop + 1 - start) * lengths[order[stop]] <= frames_per_chunk
            and lengths[order[stop]] <= spread * lengths[order[start]]
        ):
            stop += 1
        chunks.append(order[start:stop])
        start = stop
    return chunks


def dtw_scores(
    query_feats: Sequence[np.ndarray | torch.Tensor],
    dict_feats: Sequence[np.ndarray | torch.Tensor],
    cosine: bool = True,
    device: str | torch.device | None = None,
    frames_per_chunk: int | None = None,
    mode: str = "similarity",
) -> np.ndarray:
    """DTW scores of every query against every dictionary sequence: ``(n_q, n_d)`` float64, larger = closer.

    ``query_feats[i]`` is ``(Tq_i, d)``, ``dict_feats[j]`` is ``(Td_j, d)`` (numpy or torch), finite in float32.
    The map of a pair is the cosine similarity of their frames (a zero frame has similarity 0 with any
    frame), or their dot product if ``cosine`` is False; each score equals ``dtw_similarity(map)[0]``
    (``mode="similarity"``, Eq. 7) or ``dtw_cost(map)[0]`` (``mode="cost"``, the mean similarity along the
    least-cost path), and a score that overflows float32 is an error. Sequences are sorted by length and
    grouped so that padding stays small; each group pair is one batched anti-diagonal wavefront (see
    :func:`_dtw_wavefront`) in float32 on ``device`` (default: where the first query lives).
    ``frames_per_chunk`` bounds a group's ``count x max length``, so a group pair's map holds at most
    ``frames_per_chunk ** 2`` floats (None: 4096 on the CPU, where a group's longest sequence is also at
    most 1.25 times its shortest; 16384 on a GPU, where padding costs less than the extra steps of more
    groups).
    """
    if frames_per_chunk is not None and frames_per_chunk < 1:
        raise ValueError(f"frames_per_chunk must be >= 1, got {frames_per_chunk}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if device is None:
        first = query_feats[0] if len(query_feats) else None
        device = first.device if isinstance(first, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    on_cpu = device.type == "cpu"
    frames_per_chunk = frames_per_chunk or (4096 if on_cpu else 16384)
    spread = 1.25 if on_cpu else float("inf")
    q = _as_tensors(query_feats, "query_feats", device)
    d = _as_tensors(dict_feats, "dict_feats", device)
    if q[0].shape[1] != d[0].shape[1]:
        raise ValueError(f"query features are {q[0].shape[1]}-d but dictionary features {d[0].shape[1]}-d")
    if cosine:
        q, d = [_unit_rows(t) for t in q], [_unit_rows(t) for t in d]
    q_len = np.array([len(t) for t in q])
    d_len = np.array([len(t) for t in d])
    scores = np.empty((len(q), len(d)), dtype=np.float64)
    with torch.no_grad():
        for qc in _chunks(q_len, frames_per_chunk, spread):
            tq = int(q_len[qc].max())
            qpad = torch.nn.utils.rnn.pad_sequence([q[k] for k in qc], batch_first=True)  # (nq, tq, f)
            for dc in _chunks(d_len, frames_per_chunk, spread):
                td = int(d_len[dc].max())
                dpad = torch.nn.utils.rnn.pad_sequence([d[k] for k in dc], batch_first=True)  # (nd, td, f)
                # diagonals run over the shorter padded axis: DTW of a map equals DTW of its transpose
                if tq <= td:
                    out = _dtw_wavefront(qpad, dpad, q_len[qc], d_len[dc], mode)
                else:
                    out = _dtw_wavefront(dpad, qpad, d_len[dc], q_len[qc], mode).T
                scores[np.ix_(qc, dc)] = out.reshape(len(qc), len(dc)).double().cpu().numpy()
    require_finite(scores, "DTW scores", ("query", "dictionary sequence"), "float32 overflow: scale the features down")
    return scores
