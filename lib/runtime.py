"""Runtime helpers every notebook uses: device, seeding, profiles, data root, checkpoints, claims.

- :func:`pick_device` -- cuda, then mps, then cpu.
- :func:`seed_everything` -- one seed for ``random``, numpy and torch, with deterministic kernels.
- :func:`resolve_profile` -- ``smoke`` (2 CPU cores, minutes), ``full`` (one GPU), ``auto``.
- :func:`find_data_root` -- where the real datasets live.
- :func:`source_fingerprint` -- a hash of the code a cache or checkpoint was made by.
- :class:`Checkpointer` -- atomic, validated, resumable training checkpoints, keyed by the code that wrote them.
- :func:`check_finite` -- stop training on a NaN/inf loss, naming the step and the loss term.
- :func:`run_provenance` -- commit, device, versions, profile, seeds and parameters of a run.
- :func:`write_claims` -- a notebook's claims (value with interval, n, verdict) and result tables as JSON,
  written atomically with the run's provenance; :func:`load_recorded`, :func:`recorded_markdown` -- the
  runs recorded under ``results/`` by ``./run reproduce --record``, rendered for a notebook's closing cells.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import random
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "results"
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


def source_fingerprint(sources: Iterable[ModuleType | str | os.PathLike]) -> str:
    """A 16-hex-digit hash of the names and bytes of the given modules' (or files') source, so that a cache
    or checkpoint written by other code is never taken for this code's."""
    files = sorted({Path(m.__file__ if isinstance(m, ModuleType) else m).resolve() for m in sources})
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + (f.read_bytes() if f.exists() else b"missing"))
    return digest.hexdigest()[:16]


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: corrupt, truncated or from another configuration."""


def _check_loadable(value: Any, where: str) -> None:
    """Raise :class:`CheckpointError` naming the first value that ``torch.load(weights_only=True)`` refuses."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str | int):
                raise CheckpointError(f"checkpoint state {where}: key {k!r} is a {type(k).__name__}; use str keys")
            _check_loadable(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_loadable(v, f"{where}[{i}]")
    elif not isinstance(value, torch.Tensor | str | int | float | bool | type(None) | torch.dtype | torch.device):
        hint = " (convert numpy arrays with torch.from_numpy)" if isinstance(value, np.ndarray | np.generic) else ""
        raise CheckpointError(
            f"checkpoint state {where!r} is a {type(value).__name__}, which torch.load(weights_only=True) "
            f"cannot read back{hint}; save tensors, numbers, strings, lists and dicts only"
        )


class Checkpointer:
    """Atomic training checkpoints in ``directory``, named ``step_<N>.pt``, keeping the newest ``keep``.

    ``meta`` (plain JSON-able values: model name, sizes, seed) is stored in every checkpoint, with the
    :func:`source_fingerprint` of ``sources`` (the modules whose code defines the training). A checkpoint
    whose meta differs is refused, since resuming it would silently train another model; one written by
    other code (same meta, another fingerprint) is skipped with a warning, so training starts afresh.
    :meth:`load_latest` walks from the newest file to older ones, skipping (with a warning) files that are
    corrupt, so the previous good checkpoint is used. Loads use ``weights_only=True``. Temporary files of
    an interrupted save are removed when a Checkpointer opens the folder.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        every: int,
        meta: Mapping[str, Any],
        keep: int = 2,
        sources: Iterable[ModuleType | str | os.PathLike] = (),
    ):
        if every < 1 or keep < 1:
            raise ValueError(f"every and keep must be >= 1, got every={every}, keep={keep}")
        self.directory = Path(directory)
        self.every = every
        self.keep = keep
        self.meta = json.loads(json.dumps(dict(meta)))  # normalise tuples etc. as stored
        sources = list(sources)
        self.code = source_fingerprint(sources) if sources else None
        self.skipped: list[tuple[Path, str]] = []
        if self.directory.is_dir():
            for tmp in self.directory.glob(".step_*.pt.*.tmp"):  # left by an interrupted save
                tmp.unlink(missing_ok=True)

    def paths(self) -> list[Path]:
        """Existing checkpoint files, oldest first (by step)."""
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
        """Write ``{"step", "meta", "code", "state"}`` atomically as ``step_<step>.pt``, then prune: keep the
        newest ``keep`` readable checkpoints (by modification time), never the file just written."""
        _check_loadable(dict(state), "")
        path = self.directory / f"step_{step}.pt"
        with atomic_path(path) as tmp:
            torch.save({"step": step, "meta": self.meta, "code": self.code, "state": dict(state)}, tmp)
        readable = []
        for p in self.paths():
            if p == path:
                continue
            with contextlib.suppress(CheckpointError):
                self.load(p)
                readable.append(p)
        readable.sort(key=lambda p: p.stat().st_mtime_ns)
        for old in readable[: max(0, len(readable) - (self.keep - 1))]:
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
        if blob.get("code") != self.code:
            raise CheckpointError(
                f"checkpoint {path} was written by other code (source fingerprint {blob.get('code')} != "
                f"{self.code}): the training's lib modules changed since, so it is not resumed"
            )
        return int(blob["step"]), blob["state"]

    def load_latest(self) -> tuple[int, dict[str, Any]] | None:
        """The newest usable checkpoint as ``(step, state)``, or ``None`` when there is none.

        Corrupt files and files written by other code are skipped (recorded in :attr:`skipped` with the
        reason); a file from another configuration is an error, since every older file would be too.
        """
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


VERDICTS = ("holds", "fails", "inconclusive", "not reproducible here")
CLAIM_KEYS = ("claim", "paper", "dataset", "ours", "verdict", "reason")
CLAIMS_SCHEMA = 2


def git_commit() -> str:
    """The repository's HEAD commit (``+dirty`` when tracked files differ from it), or ``unknown``."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def run_provenance(profile: Profile, seeds: Sequence[int], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What a reader needs to repeat a run: commit, time, device, torch/CUDA versions, profile, seeds and
    the notebook's parameters."""
    device = profile.device
    name = torch.cuda.get_device_name(0) if device == "cuda" else ("Apple GPU" if device == "mps" else "CPU")
    return {
        "commit": git_commit(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "profile": profile.name,
        "device": f"{device} ({name})",
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device == "cuda" else None,
        "seeds": [int(s) for s in seeds],
        "parameters": {k: _plain(v) for k, v in parameters.items()},
    }


def _check_estimate(i: int, ours: Any) -> dict[str, Any] | None:
    """A claim's ``ours``: None, or ``{"value", "ci95": [lo, hi] | None, "n"}`` (an object with
    ``to_json()``, such as :class:`lib.evaluation.uncertainty.Estimate`, is converted)."""
    if ours is None:
        return None
    if hasattr(ours, "to_json"):
        ours = ours.to_json()
    if not isinstance(ours, Mapping) or not {"value", "ci95", "n"} <= ours.keys():
        raise ValueError(f"claims row {i}: ours must be None or have value, ci95 and n, got {ours!r}")
    ci = ours["ci95"]
    if ci is not None and (len(ci) != 2 or not ci[0] <= ci[1]):
        raise ValueError(f"claims row {i}: ci95 must be [low, high] with low <= high, got {ci!r}")
    return {k: _plain(v) for k, v in ours.items()}


def write_claims(
    path: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    provenance: Mapping[str, Any],
    tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> Path:
    """Write a notebook's claims and result tables to ``path`` as JSON, atomically, with ``provenance``
    (:func:`run_provenance`).

    Each row has ``claim`` (str), ``paper`` (the paper's number or statement, on its dataset), ``dataset``
    (ours), ``ours`` (``{"value", "ci95", "n"}`` or an ``Estimate``; None when not reproducible here),
    ``verdict`` (one of :data:`VERDICTS`, following from the intervals) and ``reason`` (why that verdict);
    other keys (``seeds``: per-seed values) are kept. ``tables``: named lists of rows (dicts) with the
    notebook's results as data, for ``--record``.
    """
    clean = []
    for i, row in enumerate(rows):
        missing = [k for k in CLAIM_KEYS if k not in row]
        if missing:
            raise ValueError(f"claims row {i} lacks {missing}; each row needs {list(CLAIM_KEYS)}")
        if row["verdict"] not in VERDICTS:
            raise ValueError(f"claims row {i}: verdict must be one of {list(VERDICTS)}, got {row['verdict']!r}")
        if row["ours"] is None and row["verdict"] != "not reproducible here":
            raise ValueError(f"claims row {i}: a claim without our number must be 'not reproducible here'")
        clean.append({k: _plain(v) for k, v in row.items()} | {"ours": _check_estimate(i, row["ours"])})
    doc = {
        "schema": CLAIMS_SCHEMA,
        "run": dict(provenance),
        "claims": clean,
        "tables": {name: [{k: _plain(v) for k, v in r.items()} for r in t] for name, t in (tables or {}).items()},
    }
    path = Path(path)
    atomic_write_text(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return path


def load_recorded(notebook: str, results_dir: str | os.PathLike = RESULTS) -> dict[str, dict[str, Any]]:
    """The runs recorded for ``notebook`` by ``./run reproduce --record``: ``{profile: record}`` read from
    ``results/<notebook>/<profile>.json`` (empty when none was recorded)."""
    folder = Path(results_dir) / notebook
    out = {}
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            doc = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"recorded results {f} are not valid JSON ({e}); re-record them") from e
        if doc.get("schema") != CLAIMS_SCHEMA or not {"run", "claims", "tables"} <= doc.keys():
            raise ValueError(f"recorded results {f} are not in claims schema {CLAIMS_SCHEMA}; re-record them")
        out[f.stem] = doc
    return out


def format_estimate(ours: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``{"value", "ci95", "n"}`` -> ``0.612 [0.58, 0.64] (n=120)``; ``-`` for None."""
    if ours is None:
        return "-"
    text = f"{ours['value']:.{digits}g}"
    if ours.get("ci95") is not None:
        lo, hi = ours["ci95"]
        text += f" [{lo:.{digits}g}, {hi:.{digits}g}]"
    return text + (f" (n={ours['n']})" if ours.get("n") is not None else "")


def _md_cell(v: Any) -> str:
    if isinstance(v, float):
        v = f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of dicts (the same keys) -> a Markdown table."""
    if not rows:
        return "(empty table)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_md_cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def recorded_markdown(notebook: str, profile: str = "full", results_dir: str | os.PathLike = RESULTS) -> str:
    """Markdown of the run of ``notebook`` recorded under ``results/`` for ``profile``: a provenance line,
    the claims table and every result table; or a sentence saying that no such run is recorded yet."""
    rec = load_recorded(notebook, results_dir).get(profile)
    if rec is None:
        command = f"./run reproduce {notebook[:2]} --profile {profile} --record"
        return f"No `{profile}` run of `{notebook}` is recorded yet (`{command}`)."
    run = rec["run"]
    lines = [
        f"Recorded `{profile}` run: commit `{run['commit'][:12]}`, {run['created']}, {run['device']}, torch "
        f"{run['torch']}, seeds {run['seeds']}" + (f", {rec['wall_s']:.0f} s" if "wall_s" in rec else "") + ".",
        "",
        markdown_table(
            [
                {
                    "claim": c["claim"],
                    "paper": c["paper"],
                    "dataset": c["dataset"],
                    "ours [95% CI] (n)": format_estimate(c["ours"]),
                    "verdict": c["verdict"],
                }
                for c in rec["claims"]
            ]
        ),  # fmt: skip
    ]
    for name, table in rec["tables"].items():
        lines += ["", f"**{name}**", "", markdown_table(table)]
    return "\n".join(lines)


def _plain(v: Any) -> Any:
    """numpy/torch scalars and arrays -> Python values, so JSON can hold them; NaN -> None."""
    if isinstance(v, torch.Tensor | np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    return v
