"""Dynamic time warping on similarity maps (Skip-Pose Vectors, Shirakawa & Kozakaya 2019, Sec. 3.2).

A query sequence of ``Tq`` per-frame features and a dictionary sequence of ``Td`` features give a
similarity map ``S`` of shape ``(Tq, Td)`` (cosine similarities, Eq. 6). DTW finds the monotone path from
``(0, 0)`` to ``(Tq - 1, Td - 1)`` with steps ``(1, 0)``, ``(0, 1)``, ``(1, 1)`` that *maximises* the summed
similarity; the score of the pair is that sum (Eq. 7). The recurrence is

    D[i, j] = S[i, j] + max(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1]),    score = D[Tq - 1, Td - 1].

- :func:`dtw_similarity` -- the reference: one map, score and path (numpy).
- :func:`dtw_scores` -- all query x dictionary scores at once, batched with torch (CPU or GPU).

Action recognition from the scores (1-NN accuracy, per-class average precision) is in :mod:`lib.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def dtw_similarity(sim: np.ndarray) -> tuple[float, np.ndarray]:
    """Best monotone alignment of a ``(Tq, Td)`` similarity map.

    Returns ``(score, path)``: ``score`` the maximal sum of ``sim`` along a path from ``(0, 0)`` to
    ``(Tq - 1, Td - 1)`` with steps ``(1, 0)``, ``(0, 1)``, ``(1, 1)``; ``path`` the ``(L, 2)`` int array of
    the ``(i, j)`` cells on it, in order. Ties prefer the diagonal step, then ``(1, 0)``.
    """
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or min(sim.shape) < 1:
        raise ValueError(f"expected a non-empty (Tq, Td) similarity map, got shape {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("the similarity map contains NaN or inf")
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


def _dtw_padded(sim: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """DTW scores of a batch of padded maps ``sim`` ``(T1, B, T2)`` whose true sizes are ``rows``, ``cols``.

    Row by row; inside a row ``D[i, j] = max(a_j, D[i, j - 1] + s_ij)`` with ``a_j = s_ij + max(D[i-1, j],
    D[i-1, j-1])`` is a max-plus scan, solved as ``D[i, j] = C_j + cummax_k<=j(a_k - C_k)`` with ``C`` the
    cumulative sum of the row. Padding lies below and to the right of each true map, so it never reaches the
    cell ``(rows - 1, cols - 1)`` that is read out.
    """
    t1, b, t2 = sim.shape
    neg = torch.finfo(sim.dtype).min / 4
    out = torch.empty(b, dtype=sim.dtype, device=sim.device)
    last_col = (cols - 1).unsqueeze(1)
    prev = torch.full((b, t2 + 1), neg, dtype=sim.dtype, device=sim.device)
    prev[:, 0] = 0.0  # virtual D[-1, -1] = 0 so the first row starts at (0, 0)
    for i in range(t1):
        s = sim[i]
        up = torch.maximum(prev[:, 1:], prev[:, :-1])
        c = torch.cumsum(s, dim=1)
        row = c + torch.cummax(s + up - c, dim=1).values
        done = rows == i + 1
        if done.any():
            out[done] = row[done].gather(1, last_col[done]).squeeze(1)
        prev = torch.cat([prev.new_full((b, 1), neg), row], dim=1)
    return out


def _as_tensors(seqs: Sequence[np.ndarray | torch.Tensor], name: str, device: torch.device) -> list:
    out = []
    for k, x in enumerate(seqs):
        t = torch.as_tensor(x, device=device, dtype=torch.float32)
        if t.ndim != 2 or t.shape[0] < 1:
            raise ValueError(f"{name}[{k}] must be a non-empty (T, d) feature array, got shape {tuple(t.shape)}")
        out.append(t)
    if not out:
        raise ValueError(f"{name} is empty; expected a list of (T, d) feature arrays")
    if len({t.shape[1] for t in out}) != 1:
        raise ValueError(f"{name} mixes feature sizes {sorted({t.shape[1] for t in out})}")
    return out


def _chunks(lengths: np.ndarray, frames_per_chunk: int) -> list[np.ndarray]:
    """Indices sorted by length, cut into chunks whose ``count * max length`` stays near the budget."""
    order = np.argsort(lengths, kind="stable")
    chunks, start = [], 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop + 1 - start) * lengths[order[stop]] <= frames_per_chunk:
            stop += 1
        chunks.append(order[start:stop])
        start = stop
    return chunks


def dtw_scores(
    query_feats: Sequence[np.ndarray | torch.Tensor],
    dict_feats: Sequence[np.ndarray | torch.Tensor],
    cosine: bool = True,
    device: str | torch.device | None = None,
    frames_per_chunk: int = 4096,
) -> np.ndarray:
    """DTW scores of every query against every dictionary sequence: ``(n_q, n_d)`` float64.

    ``query_feats[i]`` is ``(Tq_i, d)``, ``dict_feats[j]`` is ``(Td_j, d)`` (numpy or torch). The map of a pair
    is the cosine similarity of their frames (dot product if ``cosine`` is False); each score equals
    ``dtw_similarity(map)[0]``. Sequences are sorted by length and grouped so that padding stays small; each
    group pair is one batched row-by-row max-plus scan (see :func:`_dtw_padded`) in float32 on ``device``
    (default: where the first query lives). ``frames_per_chunk`` bounds a group's ``count x max length``,
    so a group pair's map holds at most ``frames_per_chunk ** 2`` floats.
    """
    if frames_per_chunk < 1:
        raise ValueError(f"frames_per_chunk must be >= 1, got {frames_per_chunk}")
    if device is None:
        first = query_feats[0] if len(query_feats) else None
        device = first.device if isinstance(first, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    q = _as_tensors(query_feats, "query_feats", device)
    d = _as_tensors(dict_feats, "dict_feats", device)
    if q[0].shape[1] != d[0].shape[1]:
        raise ValueError(f"query features are {q[0].shape[1]}-d but dictionary features {d[0].shape[1]}-d")
    if cosine:
        q = [torch.nn.functional.normalize(t, dim=1) for t in q]
        d = [torch.nn.functional.normalize(t, dim=1) for t in d]
    q_len = np.array([len(t) for t in q])
    d_len = np.array([len(t) for t in d])
    scores = np.empty((len(q), len(d)), dtype=np.float64)
    with torch.no_grad():
        for qc in _chunks(q_len, frames_per_chunk):
            tq = int(q_len[qc].max())
            qpad = torch.nn.utils.rnn.pad_sequence([q[k] for k in qc], batch_first=True)  # (nq, tq, f)
            for dc in _chunks(d_len, frames_per_chunk):
                td = int(d_len[dc].max())
                dpad = torch.nn.utils.rnn.pad_sequence([d[k] for k in dc], batch_first=True)  # (nd, td, f)
                rows = torch.as_tensor(np.repeat(q_len[qc], len(dc)), device=device)
                cols = torch.as_tensor(np.tile(d_len[dc], len(qc)), device=device)
                # scan along the shorter padded axis: DTW of a map equals DTW of its transpose
                if tq <= td:
                    sim = torch.einsum("aif,bjf->iabj", qpad, dpad).reshape(tq, -1, td)
                    out = _dtw_padded(sim.contiguous(), rows, cols)
                else:
                    sim = torch.einsum("aif,bjf->jabi", qpad, dpad).reshape(td, -1, tq)
                    out = _dtw_padded(sim.contiguous(), cols, rows)
                scores[np.ix_(qc, dc)] = out.reshape(len(qc), len(dc)).double().cpu().numpy()
    return scores
