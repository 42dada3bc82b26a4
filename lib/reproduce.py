"""Execute the course notebooks with papermill into ``reports/`` and gather their claims.

``./run reproduce`` calls :func:`main`. Every selected notebook runs in course order with
``--cwd notebooks``; its report is ``reports/<notebook>.ipynb`` plus ``.html``, replaced only when the new
run succeeded. A failing notebook keeps its partial output as ``reports/<notebook>.failed.ipynb`` and does
not stop the others; the exit status is non-zero at the end. ``reports/summary.md`` gathers every
notebook's ``reports/<notebook>/claims.json`` into one table.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.runtime import PROFILES, REPO_ROOT, atomic_path, atomic_write_text

NOTEBOOKS = REPO_ROOT / "notebooks"
REPORTS = REPO_ROOT / "reports"


class ReproduceError(ValueError):
    """Bad command-line input: unknown notebook, range or parameter."""


def list_notebooks(notebooks_dir: Path = NOTEBOOKS) -> list[Path]:
    """Course notebooks ``NN_slug.ipynb`` in course order."""
    return sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))


def select_notebooks(selection: list[str], notebooks: list[Path]) -> list[Path]:
    """Pick notebooks by number (``05``), range (``03-06``) or name; no selection means all."""
    if not selection:
        return notebooks
    by_number = {p.name[:2]: p for p in notebooks}
    chosen: list[Path] = []
    for item in selection:
        if "-" in item and all(part.isdigit() for part in item.split("-", 1)):
            lo, hi = (int(x) for x in item.split("-", 1))
            picked = [p for n, p in by_number.items() if lo <= int(n) <= hi]
        else:
            key = item[:2] if item[:2].isdigit() else None
            picked = [by_number[key]] if key in by_number else [p for p in notebooks if p.stem == item]
        if not picked:
            names = ", ".join(p.stem for p in notebooks)
            raise ReproduceError(f"no notebook matches {item!r}; available: {names}")
        chosen += [p for p in picked if p not in chosen]
    return sorted(chosen)


def parse_value(text: str) -> Any:
    """A ``-p name value`` value: a Python literal (``3``, ``0.5``, ``None``, ``[2, 4]``) or else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and defaults in a notebook's ``parameters`` cell (papermill's inspection)."""
    import papermill

    return {name: info["default"] for name, info in papermill.inspect_notebook(str(path)).items()}


def validate_parameters(notebooks: list[Path], params: dict[str, Any]) -> None:
    """Reject, before anything runs, a parameter that a selected notebook does not declare."""
    problems = []
    for path in notebooks:
        valid = notebook_parameters(path)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            problems.append(f"{path.stem}: unknown parameter(s) {unknown}; valid: {sorted(valid)}")
    if "profile" in params and params["profile"] not in PROFILES:
        problems.append(f"profile {params['profile']!r} is not one of {list(PROFILES)}")
    if problems:
        raise ReproduceError("\n".join(problems))


@dataclass
class RunResult:
    notebook: str
    ok: bool
    message: str = ""


def run_notebook(path: Path, params: dict[str, Any], reports_dir: Path = REPORTS, kernel: str = "python3") -> RunResult:
    """Execute one notebook into ``reports_dir``; replace its report only on success."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    reports_dir.mkdir(parents=True, exist_ok=True)
    final = reports_dir / f"{path.stem}.ipynb"
    failed = reports_dir / f"{path.stem}.failed.ipynb"
    tmp = reports_dir / f".{path.stem}.running.ipynb"
    try:
        papermill.execute_notebook(
            str(path), str(tmp), parameters=params, cwd=str(path.parent),
            kernel_name=kernel, progress_bar=False,
        )  # fmt: skip
    except Exception as e:  # papermill raises PapermillExecutionError; kernel death raises others
        if tmp.exists():
            os.replace(tmp, failed)
        return RunResult(path.stem, False, f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300]}")
    html, _ = HTMLExporter().from_notebook_node(nbformat.read(tmp, as_version=4))
    with atomic_path(reports_dir / f"{path.stem}.html") as t:
        t.write_text(html)
    os.replace(tmp, final)
    failed.unlink(missing_ok=True)
    return RunResult(path.stem, True)


def load_claims(reports_dir: Path, stem: str) -> list[dict[str, Any]] | str:
    """A notebook's claims rows, or a string saying why there are none."""
    path = reports_dir / stem / "claims.json"
    if not path.exists():
        return "no claims"
    try:
        rows = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        return f"unreadable {path.name}: {e}"
    return rows if isinstance(rows, list) else f"{path.name} is not a list of rows"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        v = f"{v:.3g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def write_summary(results: list[RunResult], all_notebooks: list[Path], reports_dir: Path = REPORTS) -> Path:
    """``reports/summary.md``: per notebook its status in this run and its claims table."""
    status = {r.notebook: r for r in results}
    lines = ["# Reproduction summary", "", "| notebook | status |", "|---|---|"]
    for p in all_notebooks:
        r = status.get(p.stem)
        s = "not run" if r is None else ("ok" if r.ok else f"**FAILED**: {_cell(r.message)}")
        lines.append(f"| {p.stem} | {s} |")
    lines += ["", "## Claims", "", "| notebook | dataset | claim | paper | ours | holds? |", "|---" * 6 + "|"]
    for p in all_notebooks:
        r = status.get(p.stem)
        if r is not None and not r.ok:
            lines.append(f"| {p.stem} | | FAILED in this run, no claims | | | |")
            continue
        rows = load_claims(reports_dir, p.stem)
        if isinstance(rows, str):
            continue
        for row in rows:
            holds = {True: "yes", False: "no", None: "n/a"}.get(row.get("holds"), _cell(row.get("holds")))
            cells = [_cell(row.get(k, "")) for k in ("dataset", "claim", "paper", "ours")]
            lines.append(f"| {p.stem} | {' | '.join(cells)} | {holds} |")
    path = reports_dir / "summary.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def reproduce(
    selection: list[str], params: dict[str, Any],
    notebooks_dir: Path = NOTEBOOKS, reports_dir: Path = REPORTS,
) -> int:  # fmt: skip
    """Validate, run every selected notebook, write the summary; 0 if all succeeded else 1."""
    notebooks = list_notebooks(notebooks_dir)
    chosen = select_notebooks(selection, notebooks)
    validate_parameters(chosen, params)
    results = []
    for path in chosen:
        print(f"[reproduce] {path.stem} ...", flush=True)
        r = run_notebook(path, params, reports_dir)
        print(f"[reproduce] {path.stem}: {'ok' if r.ok else 'FAILED ' + r.message}", flush=True)
        results.append(r)
    summary = write_summary(results, notebooks, reports_dir)
    failed = [r.notebook for r in results if not r.ok]
    print(f"[reproduce] summary: {summary}")
    if failed:
        print(f"[reproduce] failed: {', '.join(failed)} (partial outputs: reports/<notebook>.failed.ipynb)")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./run reproduce", description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="numbers (05), ranges (03-06) or names; default all")
    ap.add_argument("--profile", default="auto", help=f"one of {list(PROFILES)} (default auto)")
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = ap.parse_args(argv)
    params = {"profile": args.profile} | {k: parse_value(v) for k, v in args.param}
    try:
        return reproduce(args.notebooks, params)
    except ReproduceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
