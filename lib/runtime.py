"""Runtime helpers every notebook uses: device, seeding, profiles, data root, checkpoints, claims.

- :func:`pick_device` -- cuda, then mps, then cpu.
- :func:`seed_everything` -- one seed for ``random``, numpy and torch, with deterministic kernels.
- :func:`resolve_profile` -- ``smoke`` (2 CPU cores, minutes), ``full`` (one GPU), ``auto``.
- :func:`find_data_root` -- where the real datasets live.
- :class:`Checkpointer` -- atomic, validated, resumable training checkpoints.
- :func:`check_finite` -- stop training on a NaN/inf loss, naming the step and the loss term.
- :func:`write_claims` -- a notebook's claims table as JSON, written atomically.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("smoke", "full", "auto")
T = TypeVar("T")


def pick_device() -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy and torch (all devices) and ask torch for deterministic kernels."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


@dataclass(frozen=True)
class Profile:
    """A resolved run profile. ``name`` is ``smoke`` or ``full``; ``device`` where tensors go."""

    name: str
    device: str

    @property
    def smoke(self) -> bool:
        return self.name == "smoke"

    def pick(self, smoke: T, full: T) -> T:
        """The value for this profile: ``profile.pick(smoke=200, full=20_000)``."""
        return smoke if self.name == "smoke" else full


def resolve_profile(profile: str) -> Profile:
    """``smoke`` | ``full`` | ``auto`` -> a :class:`Profile`; ``auto`` is ``full`` only when CUDA is present.

    ``smoke`` always runs on the CPU (it is what CI executes); ``full`` uses the best device.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {list(PROFILES)}")
    if profile == "auto":
        profile = "full" if torch.cuda.is_available() else "smoke"
    device = "cpu" if profile == "smoke" else pick_device().type
    return Profile(name=profile, device=device)


def find_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The folder that holds the real datasets: the argument, else ``$DATA_ROOT``, else the repo's ``data/``.

    Relative paths are taken from the current directory. A folder that does not exist is an error.
    """
    chosen = data_root or os.environ.get("DATA_ROOT") or REPO_ROOT / "data"
    path = Path(chosen).expanduser().resolve()
    if not path.is_dir():
        source = "data_root" if data_root else ("$DATA_ROOT" if os.environ.get("DATA_ROOT") else "default")
        raise FileNotFoundError(f"data root {path} (from {source}) is not a directory")
    return path


# ---------------------------------------------------------------------------------------------------------
# atomic writes


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half of it."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# ---------------------------------------------------------------------------------------------------------
# checkpoints


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: corrupt, truncated or from another configuration."""


class Checkpointer:
    """Atomic training checkpoints in ``directory``, named ``step_<N>.pt``, keeping the newest ``keep``.

    ``meta`` (plain JSON-able values: model name, sizes, seed) is stored in every checkpoint; a checkpoint
    whose meta differs is refused, since resuming it would silently train another model.
    :meth:`load_latest` walks from the newest file to older ones, skipping (with a warning) files that
    are corrupt, so the previous good checkpoint is used. Loads use ``weights_only=True``.
    """

    def __init__(self, directory: str | os.PathLike, every: int, meta: Mapping[str, Any], keep: int = 2):
        if every < 1 or keep < 1:
            raise ValueError(f"every and keep must be >= 1, got every={every}, keep={keep}")
        self.directory = Path(directory)
        self.every = every
        self.keep = keep
        self.meta = json.loads(json.dumps(dict(meta)))  # normalise tuples etc. as stored
        self.skipped: list[tuple[Path, str]] = []

    def paths(self) -> list[Path]:
        """Existing checkpoint files, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for p in self.directory.glob("step_*.pt"):
            with contextlib.suppress(ValueError):
                found.append((int(p.stem.removeprefix("step_")), p))
        return [p for _, p in sorted(found)]

    def due(self, step: int) -> bool:
        """Whether ``step`` (1-based count of finished steps) is a checkpoint step."""
        return step % self.every == 0

    def save(self, step: int, state: Mapping[str, Any]) -> Path:
        """Write ``{"step", "meta", **state}`` atomically as ``step_<step>.pt`` and prune old files."""
        path = self.directory / f"step_{step}.pt"
        with atomic_path(path) as tmp:
            torch.save({"step": step, "meta": self.meta, "state": dict(state)}, tmp)
        for old in self.paths()[: -self.keep]:
            old.unlink()
        return path

    def load(self, path: str | os.PathLike) -> tuple[int, dict[str, Any]]:
        """Load one checkpoint, raising :class:`CheckpointError` naming the file if it is unusable."""
        path = Path(path)
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated zip, garbage bytes, unsafe pickle
            raise CheckpointError(
                f"checkpoint {path} is corrupt or not a torch checkpoint ({type(e).__name__}: {e}); "
                "delete it to start over"
            ) from e
        if not isinstance(blob, dict) or not {"step", "meta", "state"} <= blob.keys():
            raise CheckpointError(f"checkpoint {path} lacks the keys step/meta/state written by Checkpointer")
        if blob["meta"] != self.meta:
            raise CheckpointError(
                f"checkpoint {path} was written for another configuration: stored meta {blob['meta']} "
                f"!= current meta {self.meta}; use another checkpoint directory or delete it"
            )
        return int(blob["step"]), blob["state"]

    def load_latest(self) -> tuple[int, dict[str, Any]] | None:
        """The newest usable checkpoint as ``(step, state)``, or ``None`` when there is none.

        Corrupt files are skipped (recorded in :attr:`skipped` with the reason); a file from another
        configuration is an error, since every older file in the folder would be too.
        """
        import warnings

        for path in reversed(self.paths()):
            try:
                return self.load(path)
            except CheckpointError as e:
                if "another configuration" in str(e):
                    raise
                self.skipped.append((path, str(e)))
                warnings.warn(f"skipping unusable checkpoint: {e}", stacklevel=2)
        return None


# ---------------------------------------------------------------------------------------------------------
# numerical guard and claims


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def check_finite(step: int, **losses: float | torch.Tensor) -> None:
    """Raise :class:`NonFiniteLossError` naming ``step`` and every loss term that is NaN or inf."""
    bad = {}
    for name, value in losses.items():
        v = float(value.detach().float().cpu()) if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(v):
            bad[name] = v
    if bad:
        terms = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise NonFiniteLossError(
            f"non-finite loss at step {step}: {terms}; lower the learning rate or check the inputs"
        )


CLAIM_KEYS = ("claim", "paper", "ours", "holds")


def write_claims(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write a notebook's claims table to ``path`` as JSON, atomically.

    Each row has ``claim`` (str), ``paper`` (the paper's number or statement, on its dataset),
    ``ours`` (our number, on our data) and ``holds`` (bool, or None when it cannot be judged here);
    other keys (``dataset``, ``note``) are kept.
    """
    clean = []
    for i, row in enumerate(rows):
        missing = [k for k in CLAIM_KEYS if k not in row]
        if missing:
            raise ValueError(f"claims row {i} lacks {missing}; each row needs {list(CLAIM_KEYS)}")
        if row["holds"] not in (True, False, None):
            raise ValueError(f"claims row {i}: holds must be True, False or None, got {row['holds']!r}")
        clean.append({k: _plain(v) for k, v in row.items()})
    path = Path(path)
    atomic_write_text(path, json.dumps(clean, indent=2) + "\n")
    return path


def _plain(v: Any) -> Any:
    """numpy/torch scalars -> Python scalars, so JSON can hold them."""
    if isinstance(v, torch.Tensor | np.generic):
        return v.item()
    if isinstance(v, np.bool_):
        return bool(v)
    return v
