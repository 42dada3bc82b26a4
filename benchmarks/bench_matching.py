"""Speed of the exact matchers (Milbich et al. 2017, Eq. 1/2): DP vs ILP (mip/CBC).

Prints, measured in one run:
- the ILP / DP time ratio at n = m = 40 (the paper's sub-sequence size; target: DP >= 100x faster),
  after checking both reach the same energy;
- the exact full-length DP time at n = m = 300 on the CPU (target: < 50 ms), and on the GPU when present.

Run: ``.venv/bin/python benchmarks/bench_matching.py``
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lib.evaluation.metrics import squared_distances
from lib.methods.matching import match_sequences_dp, match_sequences_ilp, matching_energy

COSTS = dict(lam1=0.5, lam2=0.2, lam3=0.05, outlier_cost=1.0)


def sequence_distances(n: int, m: int, seed: int) -> np.ndarray:
    """Squared distances between two noisy, differently paced walks on the unit sphere."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(4, 32))

    def walk(k: int, speed: float) -> np.ndarray:
        t = np.arange(k)[:, None] * speed
        x = np.sin(t * np.array([0.15, 0.3, 0.45, 0.6])) @ basis + 0.3 * rng.normal(size=(k, 32))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return squared_distances(walk(n, 1.0), walk(m, 1.3))


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    torch.set_num_threads(1)
    D40 = sequence_distances(40, 40, seed=0)
    pi_ilp, pi_dp = match_sequences_ilp(D40, **COSTS), match_sequences_dp(D40, **COSTS)
    e_ilp, e_dp = matching_energy(pi_ilp, D40, **COSTS), matching_energy(pi_dp, D40, **COSTS)
    assert abs(e_ilp - e_dp) < 1e-6, (e_ilp, e_dp)
    t_ilp = best_time(lambda: match_sequences_ilp(D40, **COSTS), repeat=2)
    t_dp = best_time(lambda: match_sequences_dp(D40, **COSTS), repeat=20)
    print(
        f"n = m = 40: ILP (mip/CBC, model build + solve) {t_ilp * 1e3:.0f} ms, DP {t_dp * 1e3:.2f} ms, "
        f"same energy {e_dp:.4f}, identical matching {bool((pi_ilp == pi_dp).all())}"
    )
    print(f"DP / ILP time ratio at 40 x 40: {t_dp / t_ilp:.5f}  (DP {t_ilp / t_dp:.0f}x faster; target >= 100x)")
    D300 = sequence_distances(300, 300, seed=1)
    t300 = best_time(lambda: match_sequences_dp(D300, **COSTS), repeat=5)
    print(f"full-length exact DP n = m = 300 on CPU (1 thread): {t300 * 1e3:.1f} ms  (target < 50 ms)")
    if torch.cuda.is_available():
        Dg = torch.from_numpy(D300).cuda()
        match_sequences_dp(Dg, **COSTS)
        torch.cuda.synchronize()
        tg = best_time(lambda: (match_sequences_dp(Dg, **COSTS), torch.cuda.synchronize()), repeat=5)
        print(f"full-length exact DP n = m = 300 on {torch.cuda.get_device_name()}: {tg * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
