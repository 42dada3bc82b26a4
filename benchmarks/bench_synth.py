"""Speed of building the synthetic world (``lib.world.synth``), without the cache.

Prints, for the smoke world and a larger one (the full profile's 128 px frames and 64-frame sequences,
fewer sequences unless ``--full``): frames, the time of the motion library, the rendering time, frames
per second, and the smoke world's time against its 30 s target. Then the time to load the smoke world
back from a cache file.

    python benchmarks/bench_synth.py [--full]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.world import motion  # noqa: E402
from lib.world.synth import GENERATOR_VERSION, generate_world, load_world, save_world, world_config  # noqa: E402

SMOKE_TARGET_S = 30.0


def build(profile: str, seed: int, **overrides):
    config = world_config(profile, **overrides)
    t0 = time.perf_counter()
    clips = motion.motion_library(config["profile"], seed, h36m=config["h36m_walking"])
    t1 = time.perf_counter()
    key = {"generator_version": GENERATOR_VERSION, "seed": seed, **config}
    world = generate_world(clips, key, seed, motion.retarget)
    t2 = time.perf_counter()
    return world, t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="build the whole full-profile world")
    args = ap.parse_args()
    larger = {} if args.full else {"sequences_per_activity": 6}
    cases = [("smoke", {}), ("full", larger)]
    for profile, overrides in cases:
        world, t_motion, t_render = build(profile, 0, **overrides)
        n = len(world.frames)
        total = t_motion + t_render
        print(
            f"{profile:5s} {n:6d} frames at {world.image_size} px, {world.n_sequences} sequences: "
            f"motion library {t_motion:.1f} s, rendering {t_render:.1f} s ({n / t_render:.0f} frames/s), "
            f"total {total:.1f} s ({n / total:.0f} frames/s)"
        )
        if profile == "smoke":
            print(f"smoke world time / {SMOKE_TARGET_S:.0f} s target: {total / SMOKE_TARGET_S:.2f}")
            with tempfile.TemporaryDirectory() as tmp:
                path = save_world(world, Path(tmp) / "world.npz")
                t0 = time.perf_counter()
                load_world(path)
                print(
                    f"smoke world cache: {path.stat().st_size / 1e6:.0f} MB, loads in {time.perf_counter() - t0:.2f} s"
                )


if __name__ == "__main__":
    main()
