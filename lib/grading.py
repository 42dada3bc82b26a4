"""Grade submitted exercise notebooks: ``./run grade PATH [PATH ...] [--timeout S] [--out DIR]``.

Each notebook (a path, or every ``*.ipynb`` under a folder) is executed with papermill in a fresh kernel, with a
time limit for the whole notebook. Its check cells (:func:`lib.exercises.check`) leave one JSON record per
exercise in the executed notebook (MIME type :data:`lib.exercises.MIME`); they are read back and every exercise
of the notebook's sheet (its ``exercises.sheet`` metadata, else the ``NN_`` of its file name) gets one row:
``passed``, ``failed`` (with the reason), ``not attempted``, ``error`` (the student's exception), or, for
the exercises whose check did not run, ``crashed`` / ``timed out`` (the notebook stopped before them) or
``missing`` (the notebook ran to its end without that check). A notebook that cannot be read is one
``crashed`` row. One bad submission never stops the others.

Writes ``DIR/grades.csv`` (columns :data:`COLUMNS`) and the executed notebooks under ``DIR/executed/`` for the
instructor to read; prints the table. The records are only as trustworthy as the submitted code that ran
next to them: a student could print a forged record, so an instructor grading for marks reads the executed
notebooks too.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

from lib.exercises import MIME, sheet_exercises
from lib.reproduce import quiet_kernels

TIME_LIMIT = 120  # seconds one notebook may run, kernel start included
COLUMNS = ("notebook", "exercise", "result", "detail", "executed")
# the kernel keeps quiet even when it is stopped at the time limit (its shutdown tracebacks are noise here)
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]


@dataclass(frozen=True)
class Row:
    notebook: str  # the submitted path, as given
    exercise: str  # "NN.name", or "-" when none could be named
    result: str  # passed | failed | not attempted | error | crashed | timed out | missing
    detail: str
    executed: str  # the executed notebook (under DIR/executed), "" when none was written


def find_notebooks(paths: Sequence[str | Path]) -> list[Path]:
    """The notebooks to grade: each path that is a file, and every ``*.ipynb`` under each folder (sorted,
    without ``.ipynb_checkpoints``). A path that does not exist is kept: it gets a ``crashed`` row."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        else:
            out.append(p)
    return out


def sheet_of(metadata: dict, path: Path) -> str | None:
    """The sheet a notebook belongs to: its ``exercises.sheet`` metadata, else the ``NN_`` of its file name."""
    sheet = metadata.get("exercises", {}).get("sheet") if isinstance(metadata.get("exercises"), dict) else None
    if isinstance(sheet, str) and sheet_exercises(sheet):
        return sheet
    m = re.match(r"(\d\d)_", path.name)
    return m.group(1) if m and sheet_exercises(m.group(1)) else None


def check_records(nb: dict) -> dict[str, dict]:
    """The check records of an executed notebook by exercise name (a later check of the same name wins)."""
    found = {}
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            rec = out.get("data", {}).get(MIME) if isinstance(out, dict) else None
            if isinstance(rec, dict) and isinstance(rec.get("name"), str) and isinstance(rec.get("status"), str):
                found[rec["name"]] = rec
    return found


def execute(path: Path, out: Path, time_limit: float) -> tuple[str | None, str]:
    """Run ``path`` into ``out`` (written cell by cell, so a stopped run keeps its outputs). Returns
    ``(None, "")``, or ``("crashed" | "timed out", why)``."""
    import papermill

    deadline = time.monotonic() + time_limit
    try:
        with quiet_kernels():
            papermill.execute_notebook(
                str(path), str(out), cwd=str(path.parent), kernel_name="python3", progress_bar=False,
                log_output=False, extra_arguments=KERNEL_ARGS, start_timeout=max(1, int(time_limit)),
                timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
            )  # fmt: skip
    except Exception as e:  # the student's exception, a cell past the deadline, a dead kernel
        text = str(e).strip()
        if type(e).__name__ in ("CellTimeoutError", "TimeoutError") or "timed out" in text.lower():
            return "timed out", f"the notebook ran longer than {time_limit:g} s"
        ename, evalue = getattr(e, "ename", type(e).__name__), getattr(e, "evalue", text.splitlines()[-1:])
        evalue = evalue if isinstance(evalue, str) else " ".join(evalue)
        return "crashed", f"{ename}: {evalue}"[:300]
    return None, ""


def grade_notebook(path: Path, executed: Path, time_limit: float) -> list[Row]:
    """The rows of one submitted notebook (never raises for a bad submission)."""
    try:
        nb = json.loads(path.read_text())
        if not isinstance(nb, dict) or "cells" not in nb:
            raise ValueError("not a Jupyter notebook (no cells)")
    except (OSError, ValueError) as e:
        return [Row(str(path), "-", "crashed", f"cannot read the notebook: {e}"[:300], "")]
    stopped, why = execute(path, executed, time_limit)
    try:
        ran = json.loads(executed.read_text())
    except (OSError, ValueError):
        ran, executed = {}, Path("")
    records = check_records(ran)
    sheet = sheet_of(nb.get("metadata", {}), path)
    names = sheet_exercises(sheet) if sheet else []
    names += [n for n in records if n not in names]
    out = str(executed) if str(executed) != "." else ""
    if not names:
        return [Row(str(path), "-", stopped or "missing", why or "not an exercise notebook: no check ran", out)]
    rows = []
    for name in names:
        if name in records:
            rows.append(Row(str(path), name, records[name]["status"], str(records[name].get("detail", "")), out))
        elif stopped:
            rows.append(Row(str(path), name, stopped, f"{why} before this check", out))
        else:
            rows.append(Row(str(path), name, "missing", "the notebook ran to its end without this check", out))
    return rows


def grade(paths: Sequence[str | Path], out_dir: Path, time_limit: float = TIME_LIMIT) -> list[Row]:
    """Grade every notebook of ``paths`` into ``out_dir/grades.csv`` (and ``out_dir/executed/``); return the rows."""
    executed_dir = out_dir / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    for i, path in enumerate(find_notebooks(paths)):
        rows += grade_notebook(path, executed_dir / f"{i:03d}_{path.stem}.ipynb", time_limit)
    with open(out_dir / "grades.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(astuple(r) for r in rows)
    return rows


def table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table, one line per row (a detail's first line, shortened)."""
    lines = ["| notebook | exercise | result | detail |", "|---|---|---|---|"]
    for r in rows:
        first = (r.detail.splitlines() or [""])[0]
        first = first if len(first) <= 90 else first[:87] + "..."
        lines.append(f"| {r.notebook} | {r.exercise} | {r.result} | {first.replace('|', '/')} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./run grade", description="Grade submitted exercise notebooks.")
    ap.add_argument("paths", nargs="+", help="submitted notebooks, or folders holding them")
    ap.add_argument("--timeout", type=float, default=TIME_LIMIT, help="seconds per notebook (default %(default)s)")
    ap.add_argument("--out", type=Path, default=Path("grades"), help="folder for grades.csv and executed/")
    args = ap.parse_args(argv)
    if args.timeout <= 0:
        ap.error(f"--timeout must be > 0 seconds, got {args.timeout}")
    rows = grade(args.paths, args.out, args.timeout)
    print(table(rows))
    passed = sum(r.result == "passed" for r in rows)
    print(f"\n{passed} of {len(rows)} exercises passed; written to {args.out / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
