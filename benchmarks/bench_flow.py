"""Speed and accuracy of TV-L1 flow (``lib.flow``) on the synthetic world, and of the pose-from-action pretext.

Prints, in one run:

1. ms per frame pair of TV-L1 (one OpenCV thread) at 64 and 128 px for ``OPENCV_DEFAULT_TVL1`` and
   ``COURSE_TVL1``, their ratio (target: the course set >= 3x faster), and the end-point error at the
   visible ground-truth joints for both (target: within 0.05 px of the defaults), beside the zero flow;
   at 128 px also the flow computed at 64 px and upsampled.
2. The time to build the smoke world's flow cache (train split + the val sequences the notebook uses)
   with ``--workers`` processes (target <= 60 s), and the projected time for the full world's train +
   val sequences on ``--cores`` cores at 64 and 128 px.
3. Pretext training throughput (triplets/s) at the smoke size with one torch thread.

    python benchmarks/bench_flow.py [--pairs 24] [--workers 2] [--cores 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.flow import COURSE_TVL1, OPENCV_DEFAULT_TVL1, sequence_flows  # noqa: E402
from lib.methods.pose_from_action import PoseFromActionConfig, pretext_sequences, train_pose_from_action  # noqa: E402
from lib.world.flow_cache import joint_flow_errors, world_flows  # noqa: E402
from lib.world.synth import make_world, world_config  # noqa: E402

SPEED_TARGET, EPE_TARGET, CACHE_TARGET_S = 3.0, 0.05, 60.0


def sample_pairs(world, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` frames t of the val split whose frame t + 1 is in the same sequence."""
    idx = world.split_indices("val")
    idx = idx[(idx + 1 < len(world.seq)) & (world.seq[np.minimum(idx + 1, len(world.seq) - 1)] == world.seq[idx])]
    return np.sort(rng.choice(idx, n, replace=False))


def measure(world, pairs: np.ndarray, params, size=None) -> tuple[float, float, float]:
    """(ms per pair, mean EPE at visible joints, mean zero-flow error)."""
    flows = []
    t0 = time.perf_counter()
    for t in pairs:
        flows.append(sequence_flows(world.frames[t : t + 2], params, size)[0])
    ms = (time.perf_counter() - t0) / len(pairs) * 1e3
    err = joint_flow_errors(world, np.stack(flows), pairs)
    return ms, float(err["epe"].mean()), float(err["zero"].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=24, help="frame pairs timed per setting")
    ap.add_argument("--workers", type=int, default=2, help="processes for the smoke flow cache")
    ap.add_argument("--cores", type=int, default=16, help="cores of the machine the full run is projected to")
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    smoke = make_world("smoke", 0)
    big = make_world("smoke", 0, image_size=128, sequences_per_activity=2)
    per_pair = {}
    for world, label in ((smoke, "64"), (big, "128")):
        pairs = sample_pairs(world, args.pairs, rng)
        res = {
            name: measure(world, pairs, p) for name, p in (("default", OPENCV_DEFAULT_TVL1), ("course", COURSE_TVL1))
        }
        if label == "128":
            res["course at 64, upsampled"] = measure(world, pairs, COURSE_TVL1, size=64)
        for name, (ms, epe, zero) in res.items():
            print(f"{label:>3s} px {name:24s} {ms:7.1f} ms/pair   EPE {epe:.3f} px (zero flow {zero:.3f} px)")
        (d_ms, d_epe, _), (c_ms, c_epe, _) = res["default"], res["course"]
        print(
            f"{label:>3s} px course vs default: {d_ms / c_ms:.1f}x faster (target >= {SPEED_TARGET:.0f}x), "
            f"EPE difference {c_epe - d_epe:+.3f} px (target within {EPE_TARGET} px)"
        )
        per_pair[label] = c_ms
        per_pair[f"{label}_up"] = res.get("course at 64, upsampled", (c_ms,))[0]

    # the notebook's smoke selection: 2 train sequences per activity, 1 val sequence per activity
    seqs = np.concatenate([pretext_sequences(smoke, "train", 2, 0), pretext_sequences(smoke, "val", 1, 0)])
    n_pairs = sum(len(smoke.sequence_frames(int(s))) - 1 for s in seqs)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        world_flows(smoke, seqs, COURSE_TVL1, workers=args.workers, cache_dir=tmp)
        t_cache = time.perf_counter() - t0
    print(
        f"smoke flow cache: {len(seqs)} sequences, {n_pairs} pairs, {args.workers} workers: {t_cache:.1f} s "
        f"(target <= {CACHE_TARGET_S:.0f} s)"
    )
    full = world_config("full")
    n_seq = full["sequences_per_activity"] * len(smoke.activity_names)
    # the notebook's full selection: every train sequence (about the train share) + 3 val sequences per activity
    n_used = n_seq * full["split_fractions"][0] / sum(full["split_fractions"]) + 3 * len(smoke.activity_names)
    full_pairs = int(n_used * (full["seq_len"] - 1))
    for label, ms in (("128 px", per_pair["128"]), ("64 px, upsampled to 128", per_pair["128_up"])):
        projected = full_pairs * ms / 1e3 / args.cores
        print(f"full world, train + val (~{full_pairs} pairs) at {label}: {projected:.0f} s on {args.cores} cores")

    fc = world_flows(smoke, pretext_sequences(smoke, "train", 2, 0), COURSE_TVL1, workers=args.workers)
    for variant in ("vgg_s", "vgg_m"):
        cfg = PoseFromActionConfig(
            steps=30, low_lr_steps=0, batch=16, crop=56, width=16, variant=variant, optimizer="adam"
        )
        train_pose_from_action(smoke.frames[fc.index], fc.flows, smoke.seq[fc.index], cfg, seed=0)  # warm-up
        t0 = time.perf_counter()
        train_pose_from_action(smoke.frames[fc.index], fc.flows, smoke.seq[fc.index], cfg, seed=1)
        dt = time.perf_counter() - t0
        print(
            f"pretext training at the smoke size ({variant}, batch {cfg.batch} x 3 triplets, one thread): "
            f"{cfg.steps * cfg.batch * 3 / dt:.0f} triplets/s ({dt / cfg.steps * 1e3:.0f} ms/step)"
        )


if __name__ == "__main__":
    main()
