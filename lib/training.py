"""Training machinery shared by every method: resumable loops and per-step randomness.

- :func:`resumable_training` -- run a step function for a number of steps, checkpointing atomically and
  resuming from the newest readable checkpoint (:class:`lib.runtime.Checkpointer`).
- :func:`training_sources` -- the ``lib`` modules whose code a checkpoint is keyed by.
- :func:`step_generators` -- the numpy and torch generators of one step, derived from ``(seed, step)`` only,
  so a resumed run draws exactly what an uninterrupted one would.
- :func:`sequence_groups` -- the frame indices of each sequence, the unit every sampler draws from.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lib.runtime import Checkpointer, check_finite


def resumable_training(
    modules: Mapping[str, nn.Module | torch.optim.Optimizer],
    total_steps: int,
    step_fn: Callable[[int], dict[str, float]],
    checkpoint_dir: str | Path | None,
    meta: Mapping[str, Any],
    every: int = 50,
    extra_state: Callable[[], dict[str, Any]] | None = None,
    load_extra: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
) -> dict[str, list[float]]:
    """Run ``step_fn(step)`` for ``step = start .. total_steps - 1``, checkpointing every ``every`` steps.

    ``modules``: the networks and optimisers whose ``state_dict`` make up the training state;
    ``extra_state``/``load_extra``: further tensors to save and restore (e.g. the sequence neighbours).
    ``step_fn`` does one optimisation step and returns its scalar logs, which are checked for NaN/inf and
    collected into the returned history (including those restored from the checkpoint). Checkpoints are
    keyed by the source of :func:`training_sources` too, so edited training code retrains from scratch.
    """
    history: dict[str, list[float]] = {}
    start = 0
    ckpt = None
    if checkpoint_dir is not None:
        sources = training_sources(step_fn, *modules.values())
        ckpt = Checkpointer(checkpoint_dir, every=every, meta=dict(meta), sources=sources)
    if ckpt is not None and (found := ckpt.load_latest()) is not None:
        start, state = found
        for name, module in modules.items():
            module.load_state_dict(state[name])
        history = {k: list(v) for k, v in state["history"].items()}
        if load_extra is not None:
            load_extra(state["extra"])
    for step in tqdm(range(start, total_steps), initial=start, total=total_steps, disable=not progress):
        logs = step_fn(step)
        check_finite(step, **logs)
        for k, v in logs.items():
            history.setdefault(k, []).append(float(v))
        if ckpt is not None and (ckpt.due(step + 1) or step + 1 == total_steps):
            state = {name: m.state_dict() for name, m in modules.items()}
            state["history"] = history
            state["extra"] = extra_state() if extra_state is not None else {}
            ckpt.save(step + 1, state)
    return history


def training_sources(*parts: object) -> list[ModuleType]:
    """The ``lib`` modules a training depends on: the modules defining ``parts`` (the step function, the
    networks), every ``lib`` module those import names from, and this one."""
    found = {sys.modules[__name__]}
    for part in parts:
        module = sys.modules.get(getattr(part, "__module__", None) or type(part).__module__)
        if module is None or not module.__name__.startswith("lib."):
            continue
        found.add(module)
        for value in vars(module).values():
            owner = value if isinstance(value, ModuleType) else sys.modules.get(getattr(value, "__module__", "") or "")
            if owner is not None and owner.__name__.startswith("lib.") and hasattr(owner, "__file__"):
                found.add(owner)
    return sorted(found, key=lambda m: m.__name__)


def step_generators(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """numpy and torch generators for one training step, derived from ``(seed, step)`` only."""
    rng = np.random.default_rng([seed, step])
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    torch.manual_seed(int(rng.integers(2**62)))  # dropout draws from the global generator
    return rng, gen


def sequence_groups(seq: np.ndarray) -> list[np.ndarray]:
    """Frame indices of each sequence id in ``seq`` ``(N,)``, in order of first appearance (time order
    within a sequence is the order of the frames in the array)."""
    seq = np.asarray(seq)
    _, first = np.unique(seq, return_index=True)
    return [np.flatnonzero(seq == seq[i]) for i in np.sort(first)]
