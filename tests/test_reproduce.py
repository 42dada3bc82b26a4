"""The papermill runner: parameter validation, failure isolation, atomic report replacement, summary."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from lib.reproduce import ReproduceError, parse_value, reproduce, select_notebooks


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "auto"\nseed = 0\nfail = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


CLAIMS = """
import json, pathlib
if fail:
    raise RuntimeError("boom")
out = pathlib.Path("../reports/{stem}"); out.mkdir(parents=True, exist_ok=True)
(out / "claims.json").write_text(json.dumps([{{"claim": "c", "paper": 1, "ours": seed, "holds": True}}]))
print("seed", seed)
"""


@pytest.fixture
def course(tmp_path):
    nbs, reports = tmp_path / "notebooks", tmp_path / "reports"
    nbs.mkdir()
    for stem in ("00_a", "01_b", "02_c"):
        _notebook(nbs / f"{stem}.ipynb", CLAIMS.format(stem=stem))
    return nbs, reports


def test_selection_by_number_range_and_name(course):
    nbs, _ = course
    all_nbs = sorted(nbs.glob("*.ipynb"))
    assert [p.stem for p in select_notebooks(["01-02"], all_nbs)] == ["01_b", "02_c"]
    assert [p.stem for p in select_notebooks(["02", "00_a"], all_nbs)] == ["00_a", "02_c"]
    with pytest.raises(ReproduceError, match="no notebook matches '07'"):
        select_notebooks(["07"], all_nbs)


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("None") is None
    assert parse_value("[2, 4]") == [2, 4] and parse_value("smoke") == "smoke"


def test_unknown_parameter_rejected_before_running(course):
    nbs, reports = course
    expected = r"unknown parameter\(s\) \['epochs'\]; valid: \['fail', 'profile', 'seed'\]"
    with pytest.raises(ReproduceError, match=expected):
        reproduce([], {"epochs": 3}, nbs, reports)
    with pytest.raises(ReproduceError, match="profile 'fast' is not one of"):
        reproduce([], {"profile": "fast"}, nbs, reports)
    assert not reports.exists()  # nothing ran


def test_failing_notebook_keeps_previous_report_and_others_run(course):
    nbs, reports = course
    assert reproduce(["01"], {"seed": 1}, nbs, reports) == 0
    good = (reports / "01_b.ipynb").read_bytes()
    assert (reports / "01_b.html").exists()
    assert reproduce(["00-02"], {"seed": 2, "fail": True}, nbs, reports) == 1
    assert (reports / "01_b.ipynb").read_bytes() == good  # previous good report untouched
    for stem in ("00_a", "01_b", "02_c"):  # every notebook ran and failed on its own
        failed = nbformat.read(reports / f"{stem}.failed.ipynb", as_version=4)
        assert any(o.get("ename") == "RuntimeError" for c in failed.cells for o in c.get("outputs", []))
    summary = (reports / "summary.md").read_text()
    assert summary.count("**FAILED**") == 3 and "RuntimeError" in summary


def test_success_writes_reports_and_summary(course):
    nbs, reports = course
    assert reproduce([], {"seed": 5}, nbs, reports) == 0
    for stem in ("00_a", "01_b", "02_c"):
        assert (reports / f"{stem}.ipynb").exists() and (reports / f"{stem}.html").exists()
        assert json.loads((reports / stem / "claims.json").read_text())[0]["ours"] == 5
    summary = (reports / "summary.md").read_text()
    assert summary.count("| c | 1 | 5 | yes |") == 3 and "FAILED" not in summary
    assert not list(reports.glob(".*running*"))
