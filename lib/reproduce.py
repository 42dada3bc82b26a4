"""Execute the course notebooks with papermill into ``reports/`` and gather their claims.

``./run reproduce`` calls :func:`main`. Every selected notebook runs in course order with
``--cwd notebooks``; its report is ``reports/<notebook>.ipynb`` plus ``.html``, replaced only when the new
run succeeded. A failing (or timed-out) notebook keeps its partial output as
``reports/<notebook>.failed.ipynb`` and does not stop the others; the exit status is non-zero at the end.
``--seeds 0-4`` runs a notebook once per seed (``reports/<notebook>.seed<k>.ipynb``) and aggregates its
claims into mean and standard deviation over seeds. ``--record`` copies a successful run's claims, tables
and provenance to ``results/<notebook>/<profile>.json`` (committed; the notebooks' closing cells render
them); ``--record-as NAME`` records to ``results/<notebook>/NAME.json`` instead (a run that must not take
the profile's record's place, e.g. a CPU run with other parameters). ``reports/summary.md`` gathers every
notebook's ``reports/<notebook>/claims.json`` into one table.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.evaluation.uncertainty import seed_spread
from lib.runtime import (
    CLAIMS_SCHEMA,
    PROFILES,
    REPO_ROOT,
    RESULTS,
    VERDICTS,
    atomic_path,
    atomic_write_text,
    format_estimate,
    git_commit,
    markdown_table,
    resolve_profile,
)

NOTEBOOKS = REPO_ROOT / "notebooks"
REPORTS = REPO_ROOT / "reports"
CELL_TIMEOUT = {"smoke": 900, "full": 3600}  # seconds one cell may run before the notebook counts as failed
# kernels log only errors: no "running over TCP without encryption" warning (they listen on localhost only)
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]


class ReproduceError(ValueError):
    """Bad command-line input: unknown notebook, range, parameter or value."""


def list_notebooks(notebooks_dir: Path = NOTEBOOKS) -> list[Path]:
    """Course notebooks ``NN_slug.ipynb`` in course order."""
    return sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))


def select_notebooks(selection: Sequence[str], notebooks: list[Path]) -> list[Path]:
    """Pick notebooks by number (``05``), range (``03-06``) or full name (``05_posture_reconciliation``);
    no selection means all. Anything else (``05_typo``) is an error listing the notebooks."""
    if not selection:
        return notebooks
    by_number = {p.name[:2]: p for p in notebooks}
    chosen: list[Path] = []
    for item in selection:
        if re.fullmatch(r"\d{2}-\d{2}", item):
            lo, hi = (int(x) for x in item.split("-"))
            picked = [p for n, p in by_number.items() if lo <= int(n) <= hi]
        elif re.fullmatch(r"\d{2}", item):
            picked = [by_number[item]] if item in by_number else []
        else:
            picked = [p for p in notebooks if p.stem == item]
        if not picked:
            names = ", ".join(p.stem for p in notebooks)
            raise ReproduceError(
                f"no notebook matches {item!r}; give a number (05), a range (03-06) or a full name: {names}"
            )
        chosen += [p for p in picked if p not in chosen]
    return sorted(chosen)


def parse_value(text: str) -> Any:
    """A ``-p name value`` value: a Python literal (``3``, ``0.5``, ``None``, ``[2, 4]``) or else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_seeds(text: str) -> list[int]:
    """``0-4`` -> ``[0, 1, 2, 3, 4]``; ``1,3,5`` -> ``[1, 3, 5]``."""
    if re.fullmatch(r"\d+-\d+", text):
        lo, hi = (int(x) for x in text.split("-"))
        seeds = list(range(lo, hi + 1))
    elif re.fullmatch(r"\d+(,\d+)*", text):
        seeds = [int(x) for x in text.split(",")]
    else:
        raise ReproduceError(f"--seeds takes a range (0-4) or a list (1,3,5), got {text!r}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ReproduceError(f"--seeds must name distinct seeds, got {text!r}")
    return seeds


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and literal defaults assigned in a notebook's ``parameters`` cell (parsed with ``ast``)."""
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ReproduceError(f"{path.name}: expected one cell tagged 'parameters', found {len(tagged)}")
    out = {}
    for node in ast.parse("".join(tagged[0]["source"])).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ReproduceError(f"{path.name}: the parameters cell may hold only 'name = literal' lines")
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError as e:
            raise ReproduceError(f"{path.name}: parameter {node.targets[0].id} is not a literal") from e
    return out


def _type_problem(name: str, value: Any, default: Any) -> str | None:
    """Why ``value`` cannot replace ``default`` (None when it can): the value's type must be the default's
    (an int is a fine float; a list and a tuple stand for each other; a None default takes any literal)."""
    if default is None:
        return None
    ok = {bool: (bool,), int: (int,), float: (int, float), str: (str,), list: (list, tuple), tuple: (list, tuple)}
    expected = ok.get(type(default), (type(default),))
    if isinstance(value, bool) and bool not in expected:
        expected = ()
    if isinstance(value, expected):
        return None
    got, want = type(value).__name__, type(default).__name__
    return f"parameter {name} = {value!r} is a {got}; expected {want} like its default {default!r}"


def validate_parameters(notebooks: list[Path], params: dict[str, Any]) -> None:
    """Reject, before any kernel starts, a parameter a selected notebook does not declare or whose value's
    type differs from its default's, and an unknown profile."""
    problems = []
    for path in notebooks:
        valid = notebook_parameters(path)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            problems.append(f"{path.stem}: unknown parameter(s) {unknown}; valid: {sorted(valid)}")
        problems += [
            f"{path.stem}: {p}" for k, v in params.items() if k in valid and (p := _type_problem(k, v, valid[k]))
        ]
    if "profile" in params and params["profile"] not in PROFILES:
        problems.append(f"profile {params['profile']!r} is not one of {list(PROFILES)}")
    if problems:
        raise ReproduceError("\n".join(dict.fromkeys(problems)))


@dataclass
class RunResult:
    notebook: str
    ok: bool
    message: str = ""
    wall_s: float = 0.0


@contextlib.contextmanager
def quiet_kernels():
    """Hide the jupyter client's "Kernel is running over TCP without encryption" warning (our kernels listen
    on localhost only) and papermill's per-cell logging: a user sees progress and results, not noise."""
    names = ("papermill", "traitlets", "jupyter_client")
    levels = {n: logging.getLogger(n).level for n in names}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*without encryption.*")
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        try:
            yield
        finally:
            for n, lvl in levels.items():
                logging.getLogger(n).setLevel(lvl)


def clean_stale_runs(reports_dir: Path) -> None:
    """Remove the temporary notebooks and files an interrupted earlier run left in ``reports_dir``."""
    if reports_dir.is_dir():
        for p in [*reports_dir.glob(".*.running.ipynb"), *reports_dir.glob("**/.*.tmp")]:
            p.unlink(missing_ok=True)


def run_notebook(
    path: Path,
    params: dict[str, Any],
    reports_dir: Path = REPORTS,
    kernel: str = "python3",
    cell_timeout: int = CELL_TIMEOUT["smoke"],
    stem: str | None = None,
) -> RunResult:
    """Execute one notebook into ``reports_dir/<stem>.ipynb`` (+ ``.html``); replace it only on success.

    A cell running longer than ``cell_timeout`` seconds fails the notebook like an exception does.
    """
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    stem = stem or path.stem
    reports_dir.mkdir(parents=True, exist_ok=True)
    final, failed = reports_dir / f"{stem}.ipynb", reports_dir / f"{stem}.failed.ipynb"
    tmp = reports_dir / f".{stem}.running.ipynb"
    start = time.perf_counter()
    try:
        with quiet_kernels():
            papermill.execute_notebook(
                str(path), str(tmp), parameters=params, cwd=str(path.parent), kernel_name=kernel,
                progress_bar=False, execution_timeout=cell_timeout, extra_arguments=KERNEL_ARGS,
            )  # fmt: skip
    except Exception as e:  # PapermillExecutionError, a cell time-out, a dead kernel
        if tmp.exists():
            os.replace(tmp, failed)
        lines = str(e).strip().splitlines() or [type(e).__name__]
        message = f"{type(e).__name__}: {lines[-1][:300]}"
        if "timed out" in str(e).lower() or type(e).__name__ in ("CellTimeoutError", "TimeoutError"):
            message = f"a cell ran longer than {cell_timeout} s ({message})"
        return RunResult(stem, False, message, time.perf_counter() - start)
    html, _ = HTMLExporter().from_notebook_node(nbformat.read(tmp, as_version=4))
    with atomic_path(reports_dir / f"{stem}.html") as t:
        t.write_text(html)
    os.replace(tmp, final)
    failed.unlink(missing_ok=True)
    return RunResult(stem, True, "", time.perf_counter() - start)


def refresh(selection: Sequence[str], notebooks_dir: Path = NOTEBOOKS) -> int:
    """(Authors) execute the selected notebooks in place in the smoke profile on the CPU, so that the
    committed outputs are a smoke run; 0 if all succeeded else 1."""
    import papermill

    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    failed = []
    for path in select_notebooks(selection, list_notebooks(notebooks_dir)):
        print(f"[refresh] {path.stem} ...", flush=True)
        start = time.perf_counter()
        try:
            with quiet_kernels():
                papermill.execute_notebook(
                    str(path), str(path), parameters={"profile": "smoke"}, cwd=str(path.parent),
                    kernel_name="python3", progress_bar=False, extra_arguments=KERNEL_ARGS,
                )  # fmt: skip
        except Exception as e:  # the notebook keeps its partial outputs and the error
            failed.append(path.stem)
            print(f"[refresh] {path.stem}: FAILED {type(e).__name__}", flush=True)
            continue
        print(f"[refresh] {path.stem}: ok ({time.perf_counter() - start:.0f} s)", flush=True)
    return 1 if failed else 0


def load_claims(reports_dir: Path, stem: str) -> dict[str, Any] | str:
    """A notebook's claims document (``{"schema", "run", "claims", "tables"}``), or a string saying why
    there is none."""
    path = reports_dir / stem / "claims.json"
    if not path.exists():
        return "no claims"
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        return f"unreadable {path.name}: {e}"
    if not isinstance(doc, dict) or doc.get("schema") != CLAIMS_SCHEMA:
        return f"{path.name} is not in claims schema {CLAIMS_SCHEMA} (re-run the notebook)"
    return doc


def aggregate_seeds(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Claims documents of the same notebook run with different seeds -> one document whose claims carry
    ``seeds`` (``{"values", "mean", "sd"}`` of ``ours.value``) and a verdict that holds only when every seed
    gives it (else ``inconclusive``). The first seed's ``ours`` interval is kept beside the spread."""
    first = docs[0]
    claims = []
    for k, row in enumerate(first["claims"]):
        rows = [d["claims"][k] for d in docs]
        if any(r["claim"] != row["claim"] or r["dataset"] != row["dataset"] for r in rows):
            raise ValueError(f"seed runs disagree on the claims table at row {k} ({row['claim']!r})")
        values = [r["ours"]["value"] for r in rows if r["ours"] is not None]
        verdicts = {r["verdict"] for r in rows}
        out = dict(row)
        if values:
            out["seeds"] = seed_spread(values)
        if len(verdicts) > 1:
            counts = ", ".join(f"{sum(r['verdict'] == x for r in rows)} {x}" for x in VERDICTS if x in verdicts)
            out["verdict"], out["reason"] = "inconclusive", f"seeds disagree ({counts})"
        claims.append(out)
    run = dict(first["run"]) | {"seeds": [s for d in docs for s in d["run"]["seeds"]]}
    return {"schema": CLAIMS_SCHEMA, "run": run, "claims": claims, "tables": first["tables"]}


def _fmt_ours(row: dict[str, Any]) -> str:
    text = format_estimate(row.get("ours"))
    if row.get("seeds") and row["seeds"].get("sd") is not None:
        s = row["seeds"]
        text += f"; seeds {s['mean']:.3g} ± {s['sd']:.3g} (sd, {len(s['values'])} seeds)"
    return text


def write_summary(
    results: list[RunResult], all_notebooks: list[Path], reports_dir: Path = REPORTS, commit: str | None = None
) -> Path:
    """``reports/summary.md``: per notebook its status in this run, then every claim with its value, 95%
    interval, n, profile and verdict; claims not produced by this run are marked stale with their commit
    and date."""
    status = {r.notebook: r for r in results}
    rows = []
    for p in all_notebooks:
        r = status.get(p.stem)
        s = "not run" if r is None else (f"ok ({r.wall_s:.0f} s)" if r.ok else f"**FAILED**: {r.message}")
        rows.append({"notebook": p.stem, "status": s})
    lines = ["# Reproduction summary", "", markdown_table(rows), "", "## Claims", ""]
    claim_rows = []
    for p in all_notebooks:
        r = status.get(p.stem)
        if r is not None and not r.ok:
            claim_rows.append({"notebook": p.stem, "claim": "FAILED in this run: no claims"})
            continue
        doc = load_claims(reports_dir, p.stem)
        if isinstance(doc, str):
            if doc != "no claims":
                claim_rows.append({"notebook": p.stem, "claim": doc})
            continue
        run = doc["run"]
        stale = r is None or (commit is not None and run.get("commit") != commit)
        note = f" (**stale**: from {run.get('commit', '?')[:12]}, {run.get('created', '?')})" if stale else ""
        for c in doc["claims"]:
            claim_rows.append({
                "notebook": p.stem + note, "dataset": c["dataset"], "claim": c["claim"], "paper": c["paper"],
                "ours [95% CI] (n)": _fmt_ours(c), "profile": run.get("profile", "?"), "verdict": c["verdict"],
                "why": c.get("reason", ""),
            })  # fmt: skip
    keys = ("notebook", "dataset", "claim", "paper", "ours [95% CI] (n)", "profile", "verdict", "why")
    lines.append(markdown_table([{k: row.get(k, "") for k in keys} for row in claim_rows]) if claim_rows else "(none)")
    path = reports_dir / "summary.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


RECORD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_record_name(name: str) -> str:
    """``name`` if it can name a record file ``results/<notebook>/<name>.json``, else a ReproduceError."""
    if not RECORD_NAME.fullmatch(name) or name.endswith(".json"):
        raise ReproduceError(
            f"--record-as {name!r}: expected a file stem of letters, digits, '_', '-' and '.' starting with a "
            "letter or digit, without '.json' (e.g. jhmdb_3splits_cpu)"
        )
    return name


def record(stem: str, reports_dir: Path, wall_s: float, results_dir: Path = RESULTS, name: str | None = None) -> Path:
    """Copy a successful run's claims document, with its wall time, to ``results/<stem>/<name>.json``
    (``name`` defaults to the run's profile)."""
    doc = load_claims(reports_dir, stem)
    if isinstance(doc, str):
        raise ReproduceError(f"--record: {stem} wrote no usable claims ({doc})")
    path = results_dir / stem / f"{check_record_name(name) if name is not None else doc['run']['profile']}.json"
    atomic_write_text(path, json.dumps(doc | {"wall_s": round(wall_s, 1)}, indent=2) + "\n")
    return path


def run_seeds(path: Path, params: dict[str, Any], seeds: list[int], reports_dir: Path, timeout: int) -> RunResult:
    """Run ``path`` once per seed and aggregate the seeds' claims into ``reports/<stem>/claims.json``."""
    docs, total = [], 0.0
    claims = reports_dir / path.stem / "claims.json"
    for s in seeds:
        print(f"[reproduce] {path.stem} seed {s} ...", flush=True)
        r = run_notebook(path, params | {"seed": s}, reports_dir, cell_timeout=timeout, stem=f"{path.stem}.seed{s}")
        total += r.wall_s
        if not r.ok:
            return RunResult(path.stem, False, f"seed {s}: {r.message}", total)
        doc = load_claims(reports_dir, path.stem)
        if isinstance(doc, str):
            return RunResult(path.stem, False, f"seed {s}: {doc}", total)
        atomic_write_text(claims.with_name(f"claims.seed{s}.json"), json.dumps(doc, indent=2) + "\n")
        docs.append(doc)
    atomic_write_text(claims, json.dumps(aggregate_seeds(docs), indent=2) + "\n")
    return RunResult(path.stem, True, "", total)


def reproduce(
    selection: Sequence[str],
    params: dict[str, Any],
    notebooks_dir: Path = NOTEBOOKS,
    reports_dir: Path = REPORTS,
    seeds: list[int] | None = None,
    record_to: Path | None = None,
    cell_timeout: int | None = None,
    record_as: str | None = None,
) -> int:
    """Validate, run every selected notebook (once per seed with ``seeds``), write the summary and, with
    ``record_to``, record each successful run there (as ``<profile>.json``, or ``<record_as>.json``);
    0 if all succeeded else 1."""
    if record_as is not None:
        if record_to is None:
            raise ReproduceError(f"record_as={record_as!r} needs record_to (where to record)")
        check_record_name(record_as)
    notebooks = list_notebooks(notebooks_dir)
    chosen = select_notebooks(selection, notebooks)
    validate_parameters(chosen, params | ({"seed": seeds[0]} if seeds else {}))
    profile = resolve_profile(params.get("profile", "auto")).name
    timeout = cell_timeout or CELL_TIMEOUT[profile]
    clean_stale_runs(reports_dir)
    results = []
    for path in chosen:
        print(f"[reproduce] {path.stem} ({profile}) ...", flush=True)
        if seeds:
            r = run_seeds(path, params, seeds, reports_dir, timeout)
        else:
            r = run_notebook(path, params, reports_dir, cell_timeout=timeout)
        if r.ok and record_to is not None:
            print(f"[reproduce] recorded {record(path.stem, reports_dir, r.wall_s, record_to, record_as)}", flush=True)
        print(f"[reproduce] {path.stem}: {'ok' if r.ok else 'FAILED ' + r.message} ({r.wall_s:.0f} s)", flush=True)
        results.append(r)
    summary = write_summary(results, notebooks, reports_dir, git_commit())
    failed = [r.notebook for r in results if not r.ok]
    print(f"[reproduce] summary: {summary}")
    if failed:
        print(f"[reproduce] failed: {', '.join(failed)} (partial outputs: reports/<notebook>.failed.ipynb)")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./run reproduce", description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="numbers (05), ranges (03-06) or full names; default all")
    ap.add_argument("--profile", default="auto", help=f"one of {list(PROFILES)} (default auto)")
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("--seeds", help="run each notebook once per seed: a range (0-4) or a list (1,3,5)")
    ap.add_argument("--record", action="store_true", help="record claims, tables and provenance in results/")
    ap.add_argument("--record-as", metavar="NAME", help="record as results/<notebook>/NAME.json (implies --record)")
    ap.add_argument("--cell-timeout", type=int, help=f"seconds per cell (default by profile: {CELL_TIMEOUT})")
    ap.add_argument("--in-place", action="store_true", help="(authors) execute in place in the smoke profile")
    args = ap.parse_args(argv)
    if args.in_place:
        try:
            return refresh(args.notebooks)
        except ReproduceError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    params = {"profile": args.profile} | {k: parse_value(v) for k, v in args.param}
    try:
        if args.profile not in PROFILES:
            raise ReproduceError(f"profile {args.profile!r} is not one of {list(PROFILES)}")
        seeds = parse_seeds(args.seeds) if args.seeds else None
        if seeds and "seed" in params:
            raise ReproduceError("give either --seeds or -p seed, not both")
        recording = args.record or args.record_as is not None
        return reproduce(args.notebooks, params, seeds=seeds, record_to=RESULTS if recording else None,
                         cell_timeout=args.cell_timeout, record_as=args.record_as)  # fmt: skip
    except ReproduceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
