"""Speed of the temporal representation model (``lib.methods.temporal_representation``), measured in one run.

Prints: training steps/s of :func:`train_temporal_rep` for the full model ("Ours") at the smoke and full
profile sizes on the CPU with one thread (and on CUDA when present); the forward time of detector +
encoder + decoder for a batch of 32 at the full sizes, beside the paper's 2 ms on a V100; ``crop`` +
``uncrop`` throughput; the projected smoke time of every notebook row against the 4-minute budget; and,
for sizing the full profile without a GPU, the FLOPs and the number of PyTorch operator calls of one
training step at each profile's sizes, with the full profile's training time projected for a GPU from them
(an eager step on a large GPU is bound by the per-operator launch cost at these small sizes, not by FLOPs).
Frames are random (the speed does not depend on them), so no world is built.

    python benchmarks/bench_temporal_representation.py [--steps 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from lib.methods import temporal_representation as tr  # noqa: E402
from lib.methods.stn import crop, uncrop  # noqa: E402

SMOKE_BUDGET_S = 240.0
PAPER_FORWARD_S = 0.002  # detector + encoder + decoder, batch 32, Tesla V100 (Sec. S.1.2)
# assumptions for projecting a GPU step from counts (stated in the output): eager PyTorch's cost per operator
# call (CPU dispatch + kernel launch) and the sustained fp32 rate of small convolutions on an H100
GPU_OP_OVERHEAD_S, GPU_SUSTAINED_FLOPS = 10e-6, 15e12


def fake_videos(size: int, videos: int = 8, length: int = 40, seed: int = 0) -> tr.VideoFrames:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (videos * length, size, size, 3), dtype=np.uint8)
    backgrounds = rng.integers(0, 256, (videos, size, size, 3), dtype=np.uint8)
    boxes = np.tile(np.array([[size / 4, size / 4, 3 * size / 4, 3 * size / 4]], np.float32), (len(frames), 1))
    return tr.VideoFrames(frames, np.repeat(np.arange(videos), length), backgrounds, boxes)


def steps_per_second(profile: str, name: str, device: str, steps: int, size: int) -> float:
    config = tr.variant(name, **{**tr.PROFILE_SIZES[profile], "steps": steps})
    data = fake_videos(size)
    tr.train_temporal_rep(data, tr.variant(name, **{**tr.PROFILE_SIZES[profile], "steps": 2}), device=device)
    sync(device)
    t0 = time.perf_counter()
    tr.train_temporal_rep(data, config, device=device)
    sync(device)
    return steps / (time.perf_counter() - t0)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def forward_time(device: str, repeats: int = 20) -> float:
    config = tr.variant("Ours", **tr.PROFILE_SIZES["full"])
    model = tr.build_model(config, 0, device).eval()
    x = torch.rand(32, 3, 128, 128, device=device)
    for _ in range(3):
        model.decoder(*model.encode_crops(model.crops(x)[0]))
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        model.decoder(*model.encode_crops(model.crops(x)[0]))
    sync(device)
    return (time.perf_counter() - t0) / repeats


def crop_throughput(device: str, repeats: int = 20) -> float:
    x = torch.rand(32, 3, 128, 128, device=device)
    box = torch.tensor([[0.5, 0.5, 0.1, -0.1]], device=device).repeat(32, 1)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        uncrop(crop(x, box, 64), box, 128)
    sync(device)
    return 32 * repeats / (time.perf_counter() - t0)


class _OpCount(TorchDispatchMode):
    """Counts the ATen operator calls (each is at least one kernel launch on a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def step_counts(profile: str, name: str, size: int) -> tuple[float, int]:
    """(FLOPs, operator calls) of one training step (forward, backward, Adam) at ``profile``'s sizes: the
    counts of a 2-step training minus those of a 1-step one (building the model and the data cancel)."""
    data = fake_videos(size)
    counts = []
    for steps in (1, 2):
        config = tr.variant(name, **{**tr.PROFILE_SIZES[profile], "steps": steps})
        flops, ops = FlopCounterMode(display=False), _OpCount()
        with flops:
            tr.train_temporal_rep(data, config)
        with ops:
            tr.train_temporal_rep(data, config)
        counts.append((flops.get_total_flops(), ops.calls))
    return float(counts[1][0] - counts[0][0]), counts[1][1] - counts[0][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per measurement")
    args = ap.parse_args()
    torch.set_num_threads(1)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    smoke_rate = {}
    for device in devices:
        for profile, size in (("smoke", 64), ("full", 128)):
            steps = args.steps if (device == "cuda" or profile == "smoke") else max(2, args.steps // 10)
            rate = steps_per_second(profile, "Ours", device, steps, size)
            print(f"{device:4s} {profile:5s} sizes, Ours: {rate:7.2f} training steps/s")
        print(f"{device:4s} forward (detector + encoder + decoder), batch 32, full sizes: "
              f"{1000 * forward_time(device):.2f} ms (paper: {1000 * PAPER_FORWARD_S:.0f} ms on a V100)")  # fmt: skip
        print(f"{device:4s} crop + uncrop, 128 px frames, 64 px crops: {crop_throughput(device):.0f} images/s")
    steps = tr.PROFILE_SIZES["smoke"]["steps"]
    for name in tr.VARIANTS:
        smoke_rate[name] = steps_per_second("smoke", name, "cpu", max(5, args.steps // 2), 64)
    # + the notebook's extra rows at Ours' cost: the GT-crop row and the diving pair
    train = sum(steps / r for r in smoke_rate.values()) + 3 * steps / smoke_rate["Ours"]
    print("smoke steps/s per row (cpu, 1 thread):", {k: round(v, 1) for k, v in smoke_rate.items()})
    print(f"projected smoke training of all rows, the GT-crop row and the diving pair: {train:.0f} s "
          f"= {train / SMOKE_BUDGET_S:.2f} of the {SMOKE_BUDGET_S:.0f} s notebook budget")  # fmt: skip
    full_s = 0.0
    for profile, size in (("smoke", 64), ("full", 128)):
        for name in tr.VARIANTS:
            flops, ops = step_counts(profile, name, size)
            gpu = max(ops * GPU_OP_OVERHEAD_S, flops / GPU_SUSTAINED_FLOPS)
            print(f"{profile:5s} {name:17s}: {flops / 1e9:6.2f} GFLOP and {ops} operator calls per training step; "
                  f"projected GPU step {1000 * gpu:.0f} ms")  # fmt: skip
            if profile == "full":
                copies = 4 if name == "Ours" else 1  # Ours, its GT-crop row and the diving pair
                full_s += copies * tr.PROFILE_SIZES["full"]["steps"] * gpu
    print(f"projected full-profile training of every row on one GPU: {full_s:.0f} s (assumes "
          f"{1e6 * GPU_OP_OVERHEAD_S:.0f} us per operator call and {GPU_SUSTAINED_FLOPS / 1e12:.0f} TFLOP/s; "
          f"the world, the probes and the baselines come on top)")  # fmt: skip


if __name__ == "__main__":
    main()
