"""lib.grading: the exercise notebooks run with the references filled in (so they never rot, without shipping
the solutions), and grading a submission folder with a wrong, an erroring, a crashing, a timing-out and an
unreadable notebook gives the right rows."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest

from lib.exercises import EXERCISES, MIME, sheet_exercises
from lib.grading import COLUMNS, Row, check_records, find_notebooks, grade, main, sheet_of, table

EXERCISE_DIR = Path(__file__).resolve().parent.parent / "exercises"
SHEET_02 = EXERCISE_DIR / "02_evaluation_protocols.ipynb"


def filled(path: Path, sources: dict[str, str] | None = None) -> dict:
    """The notebook at ``path`` with each stub cell replaced by ``sources[name]`` (default: the reference)."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        name = cell["metadata"].get("exercise")
        if name:
            ref = f'from lib.exercises import reference\n\n{EXERCISES[name].function} = reference("{name}")'
            cell["source"] = (sources or {}).get(name, ref)
    return nb


def code_cell(source: str, cell_id: str) -> dict:
    return {
        "cell_type": "code",
        "id": cell_id,
        "metadata": {},
        "source": source,
        "outputs": [],
        "execution_count": None,
    }


def write(path: Path, nb: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


def make_submissions(root: Path) -> None:
    """A fixture submission folder: five students' sheet 02, each going wrong differently."""
    stub = json.loads(SHEET_02.read_text())
    no_diagonal = (
        "def dtw_score(sim):\n    import numpy as np\n\n"
        "    acc = np.full((sim.shape[0] + 1, sim.shape[1] + 1), -np.inf)\n"
        "    acc[0, 0] = 0\n    for i in range(sim.shape[0]):\n        for j in range(sim.shape[1]):\n"
        "            acc[i + 1, j + 1] = sim[i, j] + max(acc[i, j + 1], acc[i + 1, j])\n    return acc[-1, -1]"
    )
    write(root / "alice" / SHEET_02.name, filled(SHEET_02, {"02.dtw_score": no_diagonal}))
    write(root / "bob" / SHEET_02.name, stub)  # handed in as handed out
    crashing = filled(SHEET_02)
    crashing["cells"].insert(-3, code_cell("raise RuntimeError('unfinished work below')", "crash"))
    write(root / "carol" / SHEET_02.name, crashing)
    hanging = filled(SHEET_02, {"02.strict_pcp": "def pcp_sticks_strict(pred, gt, thresh):\n    return pred[99]"})
    hanging["cells"].insert(-3, code_cell("import time\n\ntime.sleep(600)", "hang"))
    write(root / "dave" / "my_sheet.ipynb", hanging)  # renamed: the sheet comes from the metadata
    (root / "erin").mkdir()
    (root / "erin" / SHEET_02.name).write_text("{ not json")


def test_grading_a_submission_folder(tmp_path):
    make_submissions(tmp_path / "in")
    rows = grade([tmp_path / "in"], tmp_path / "out", time_limit=25)
    got = [(Path(r.notebook).parent.name, r.exercise, r.result) for r in rows]
    assert got == [
        ("alice", "02.strict_pcp", "passed"),
        ("alice", "02.dtw_score", "failed"),
        ("bob", "02.strict_pcp", "not attempted"),
        ("bob", "02.dtw_score", "not attempted"),
        ("carol", "02.strict_pcp", "passed"),
        ("carol", "02.dtw_score", "crashed"),
        ("dave", "02.strict_pcp", "error"),
        ("dave", "02.dtw_score", "timed out"),
        ("erin", "-", "crashed"),
    ]
    by = {(Path(r.notebook).parent.name, r.exercise): r for r in rows}
    assert (
        "12 of 12 cases wrong; the smallest: expected 0.5, got -inf\ndtw_score(" in by["alice", "02.dtw_score"].detail
    )
    assert by["carol", "02.dtw_score"].detail == "RuntimeError: unfinished work below before this check"
    assert by["dave", "02.strict_pcp"].detail.startswith("IndexError: ")
    assert by["dave", "02.dtw_score"].detail == "the notebook ran longer than 25 s before this check"
    assert by["erin", "-"].detail.startswith("cannot read the notebook: Expecting property name")
    assert by["erin", "-"].executed == ""
    with open(tmp_path / "out" / "grades.csv", newline="") as f:
        assert [tuple(r) for r in csv.reader(f)] == [COLUMNS, *[tuple(r.__dict__.values()) for r in rows]]
    assert Path(by["carol", "02.dtw_score"].executed).is_file()  # the instructor can read what ran


def test_every_exercise_notebook_passes_with_the_references_filled_in(tmp_path):
    paths = [write(tmp_path / p.name, filled(p)) for p in sorted(EXERCISE_DIR.glob("[0-9][0-9]_*.ipynb"))]
    rows = grade(paths, tmp_path / "out", time_limit=120)
    assert [(r.exercise, r.result) for r in rows] == [(n, "passed") for n in EXERCISES], table(rows)


def test_records_sheets_and_paths(tmp_path):
    record = {"name": "02.dtw_score", "status": "failed", "detail": "x", "cases": 3}
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data", "data": {MIME: record}}]},
                    {"cell_type": "code", "outputs": [{"output_type": "stream", "text": "PASS"}]},
                    {"cell_type": "markdown", "source": "x"}]}  # fmt: skip
    assert check_records(nb) == {"02.dtw_score": record}
    later = copy.deepcopy(nb)
    later["cells"].append({"cell_type": "code", "outputs": [{"data": {MIME: {**record, "status": "passed"}}}]})
    assert check_records(later)["02.dtw_score"]["status"] == "passed"  # the last run of a check counts
    assert sheet_of({"exercises": {"sheet": "06"}}, Path("x/02_a.ipynb")) == "06"
    assert sheet_of({}, Path("x/05_mine.ipynb")) == "05"
    assert sheet_of({"exercises": {"sheet": "99"}}, Path("x/notes.ipynb")) is None
    assert sheet_exercises("99") == []
    (tmp_path / "a" / ".ipynb_checkpoints").mkdir(parents=True)
    for p in ("a/2.ipynb", "a/1.ipynb", "a/.ipynb_checkpoints/1-checkpoint.ipynb", "a/x.txt"):
        (tmp_path / p).write_text("{}")
    assert find_notebooks([tmp_path / "a", tmp_path / "gone.ipynb"]) == [
        tmp_path / "a/1.ipynb",
        tmp_path / "a/2.ipynb",
        tmp_path / "gone.ipynb",
    ]
    assert table([Row("n.ipynb", "02.x", "failed", "a | b\nmore", "")]).splitlines()[-1] == (
        "| n.ipynb | 02.x | failed | a / b |"
    )


def test_a_missing_or_non_exercise_notebook_gets_a_row(tmp_path):
    empty = write(tmp_path / "notes.ipynb", {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    rows = grade([tmp_path / "gone.ipynb", empty], tmp_path / "out", time_limit=60)
    assert [(r.exercise, r.result) for r in rows] == [("-", "crashed"), ("-", "missing")]
    assert rows[1].detail == "not an exercise notebook: no check ran"


def test_command_line_rejects_a_bad_time_limit(capsys):
    with pytest.raises(SystemExit):
        main(["x.ipynb", "--timeout", "0"])
    assert "--timeout must be > 0 seconds, got 0.0" in capsys.readouterr().err
