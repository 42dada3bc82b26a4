"""Speed of the batched DTW (``lib.evaluation.dtw.dtw_scores``, both modes) on the Penn Action test x train pairs.

Penn Action's official split has 1068 test and 1258 train clips. The clip lengths are read from
``$DATA_ROOT/penn_action/labels/*.mat`` when present, else drawn (lengths 18-663, mean about 70, like
Penn Action). Features are random 64-d (Skip-Pose's hidden size). For each mode (``similarity``: Eq. 7,
``cost``: the least-cost alignment) prints pairs per second, the wall and CPU time of the full 1068 x 1258
evaluation (measured, or extrapolated from ``--fraction`` of the queries, said so; target: each under 60 s
on 2 cores), the share of it spent in the matrix products that make the maps, and the agreement with and
speed-up over the references ``dtw_similarity`` / ``dtw_cost`` on a few pairs. ``dtw_scores`` uses every
core (numba's default thread count, ``NUMBA_NUM_THREADS``). The CPU
time is this process's: on a machine shared with other jobs the wall time can be several times longer.

    python benchmarks/bench_dtw.py [--fraction 1.0] [--dim 64] [--mode both]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np
import scipy.io
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.evaluation.dtw import MODES, dtw_cost, dtw_scores, dtw_similarity  # noqa: E402
from lib.runtime import find_data_root  # noqa: E402

N_TEST, N_TRAIN = 1068, 1258


def penn_lengths(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """(test lengths, train lengths, where they came from)."""
    try:
        files = sorted((find_data_root() / "penn_action" / "labels").glob("*.mat"))
    except FileNotFoundError:
        files = []
    if len(files) == N_TEST + N_TRAIN:
        lab = [scipy.io.loadmat(f, variable_names=["nframes", "train"]) for f in files]
        n = np.array([int(np.squeeze(m["nframes"])) for m in lab])
        train = np.array([int(np.squeeze(m["train"])) == 1 for m in lab])
        return n[~train], n[train], "real Penn Action clip lengths"
    n = np.clip(np.round(rng.lognormal(np.log(60), 0.55, N_TEST + N_TRAIN)), 18, 663).astype(int)
    return n[:N_TEST], n[N_TEST:], "synthetic lengths (Penn Action labels not found)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the 1068 queries to time")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--mode", choices=[*MODES, "both"], default="both")
    args = ap.parse_args()
    if not 0 < args.fraction <= 1:
        raise SystemExit(f"--fraction must be in (0, 1], got {args.fraction}")
    rng = np.random.default_rng(0)
    test_len, train_len, source = penn_lengths(rng)
    print(f"{source}: test mean {test_len.mean():.1f} (max {test_len.max()}), train mean {train_len.mean():.1f}")
    print(f"numba threads {numba.get_num_threads()}; features {args.dim}-d")
    n_q = max(1, round(args.fraction * N_TEST))
    q_idx = rng.choice(N_TEST, n_q, replace=False)
    queries = [torch.randn(int(t), args.dim) for t in test_len[q_idx]]
    dictionary = [torch.randn(int(t), args.dim) for t in train_len]
    how = "measured" if n_q == N_TEST else f"extrapolated from {n_q} of {N_TEST} queries"
    for mode, reference in (("similarity", dtw_similarity), ("cost", dtw_cost)):
        if args.mode not in (mode, "both"):
            continue
        dtw_scores(queries[:2], dictionary[:2], mode=mode)  # warm-up: numba compiles or loads its cache
        t0, c0 = time.perf_counter(), time.process_time()
        scores = dtw_scores(queries, dictionary, mode=mode)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        scale = N_TEST / n_q
        print(
            f"{mode}: {scores.size} pairs in {elapsed:.1f} s ({scores.size / elapsed:,.0f} pairs/s); full Penn Action "
            f"test x train ({N_TEST} x {N_TRAIN}): {elapsed * scale:.1f} s wall, {cpu * scale:.1f} s CPU ({how}); "
            "target < 60 s"
        )
        dict_t = torch.nn.functional.normalize(torch.cat(dictionary), dim=1).numpy().T.copy()
        t0 = time.perf_counter()
        for q in queries:
            torch.nn.functional.normalize(q, dim=1).numpy() @ dict_t
        print(f"  the maps' matrix products alone (all BLAS threads): {(time.perf_counter() - t0) * scale:.1f} s")
        k = 4  # the reference on a few pairs: agreement and speed
        t0 = time.perf_counter()
        for a in range(k):
            qa = torch.nn.functional.normalize(queries[a], dim=1)
            da = torch.nn.functional.normalize(dictionary[a], dim=1)
            ref, _ = reference((qa @ da.T).numpy())
            assert abs(ref - scores[a, a]) < 1e-3 * max(1.0, abs(ref)), (mode, ref, scores[a, a])
        ref_rate = k / (time.perf_counter() - t0)
        print(f"  reference: {ref_rate:.1f} pairs/s; batched / reference = {scores.size / elapsed / ref_rate:.0f}x")


if __name__ == "__main__":
    main()
