"""Speed of Sümer et al. 2017's pieces (``lib.methods.spatiotemporal``), measured in one run.

Prints: spatial placement crops per second of the vectorised rejection sampler (target >= 20,000 /s on one
core); repetition mining (self-similarity + circulant filter + row maxima) of a 300-frame video (target
< 20 ms); training steps/s at the smoke size with one thread, and the projected time of the notebook's smoke
models against the 4-minute budget. Inputs are random (the speed does not depend on them).

    python benchmarks/bench_spatiotemporal.py [--steps 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from lib.methods import spatiotemporal as st  # noqa: E402

SMOKE_BUDGET_S = 240.0
SMOKE_MODELS = {"T": 3, "S": 1, "TS": 4}  # the notebook's smoke runs: T, T (no curriculum), T + rep; S; T&S, ...
SMOKE_STEPS = 120  # the notebook's smoke steps per model


def placement_rate(n_boxes: int = 400) -> float:
    rng = np.random.default_rng(0)
    boxes = np.column_stack([rng.uniform(10, 30, n_boxes), rng.uniform(5, 20, n_boxes)])
    boxes = np.column_stack([boxes, boxes + rng.uniform(15, 35, (n_boxes, 2))])
    t0 = time.perf_counter()
    n = 0
    for b in boxes:
        win, _ = st.sample_placement_crops(b, 64, 10, rng)
        n += len(win)
    return n / (time.perf_counter() - t0)


def mining_ms(frames: int = 300, repeats: int = 20) -> float:
    rng = np.random.default_rng(0)
    phase = 2 * np.pi * np.arange(frames) / 25
    f = np.column_stack([np.cos(phase), np.sin(phase)]) @ rng.normal(size=(2, 288)) + 0.1 * rng.normal(
        size=(frames, 288)
    )
    st.mine_repetitions(st.circulant_filter(st.self_similarity(f)))
    t0 = time.perf_counter()
    for _ in range(repeats):
        st.mine_repetitions(st.circulant_filter(st.self_similarity(f)))
    return 1e3 * (time.perf_counter() - t0) / repeats


def steps_per_second(tasks: str, steps: int) -> float:
    rng = np.random.default_rng(0)
    n = 8 * 40
    crops = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    boxes = np.tile([20.0, 10.0, 42.0, 56.0], (n, 1))
    seq = np.repeat(np.arange(8), 40)
    config = st.SpatioTemporalConfig(tasks=tasks, steps=steps, curriculum=False)
    t0 = time.perf_counter()
    st.train_spatiotemporal(crops, crops, boxes, seq, np.ones(n), config)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps timed per task")
    args = parser.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS on one core too
    rate = placement_rate()
    print(f"placement crops: {rate:,.0f} /s on one core (target >= 20,000 /s): {'ok' if rate >= 20_000 else 'SLOW'}")
    ms = mining_ms()
    print(f"repetition mining, 300-frame video: {ms:.1f} ms (target < 20 ms): {'ok' if ms < 20 else 'SLOW'}")
    smoke_steps = SMOKE_STEPS
    steps_per_second("TS", 2)  # warm-up: the first convolutions of a process are slow
    total = 0.0
    for tasks, count in SMOKE_MODELS.items():
        sps = steps_per_second(tasks, args.steps)
        total += count * smoke_steps / sps
        print(f"training {tasks}: {sps:.1f} steps/s at the smoke size (one thread)")
    print(f"projected smoke training ({sum(SMOKE_MODELS.values())} models x {smoke_steps} steps): {total:.0f} s, "
          f"{total / SMOKE_BUDGET_S:.0%} of the {SMOKE_BUDGET_S:.0f} s smoke budget")  # fmt: skip


if __name__ == "__main__":
    main()
