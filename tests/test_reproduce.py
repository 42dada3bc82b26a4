"""The papermill runner: parameters (names and types), selection, failure isolation, time-outs, seeds,
recording, the summary, and the parameters of every course notebook as papermill sees them."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from lib.reproduce import (
    NOTEBOOKS,
    ReproduceError,
    list_notebooks,
    main,
    notebook_parameters,
    parse_seeds,
    parse_value,
    reproduce,
    select_notebooks,
)


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'profile = "auto"  # smoke | full\nseed = 0\nfail = False\nnap = 0.0\nlabel = None'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


CLAIMS = """
import pathlib, time
from lib.runtime import resolve_profile, run_provenance, write_claims
if fail:
    raise RuntimeError("boom")
time.sleep(nap)
row = {{"claim": "c", "paper": 1, "dataset": "synthetic", "ours": {{"value": seed / 10, "ci95": [0, 1], "n": 9}},
       "verdict": "holds" if seed < 3 else "fails", "reason": "r"}}
prov = run_provenance(resolve_profile(profile), [seed], {{"seed": seed}})
write_claims(pathlib.Path("../reports/{stem}/claims.json"), [row], prov, tables={{"t": [{{"seed": seed}}]}})
print("seed", seed)
"""


@pytest.fixture
def course(tmp_path):
    nbs, reports = tmp_path / "notebooks", tmp_path / "reports"
    nbs.mkdir()
    for stem in ("00_a", "01_b", "02_c"):
        _notebook(nbs / f"{stem}.ipynb", CLAIMS.format(stem=stem))
    return nbs, reports


def test_selection_by_number_range_and_full_name_only(course):
    nbs, _ = course
    all_nbs = sorted(nbs.glob("*.ipynb"))
    assert [p.stem for p in select_notebooks(["01-02"], all_nbs)] == ["01_b", "02_c"]
    assert [p.stem for p in select_notebooks(["02", "00_a"], all_nbs)] == ["00_a", "02_c"]
    for bad in ("07", "00_typo", "0", "1-2", "b"):
        with pytest.raises(ReproduceError, match=f"no notebook matches '{bad}'.*00_a, 01_b, 02_c"):
            select_notebooks([bad], all_nbs)


def test_parse_value_and_seeds():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("None") is None
    assert parse_value("[2, 4]") == [2, 4] and parse_value("smoke") == "smoke"
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4] and parse_seeds("1,3,5") == [1, 3, 5]
    for bad in ("a", "3-", "1,1"):
        with pytest.raises(ReproduceError, match="--seeds"):
            parse_seeds(bad)


def test_unknown_parameter_and_wrong_type_rejected_before_running(course):
    nbs, reports = course
    expected = r"unknown parameter\(s\) \['epochs'\]; valid: \['fail', 'label', 'nap', 'profile', 'seed'\]"
    with pytest.raises(ReproduceError, match=expected):
        reproduce([], {"epochs": 3}, nbs, reports)
    with pytest.raises(ReproduceError, match="profile 'fast' is not one of"):
        reproduce([], {"profile": "fast"}, nbs, reports)
    with pytest.raises(ReproduceError, match=r"parameter seed = 'abc' is a str; expected int like its default 0"):
        reproduce([], {"seed": "abc"}, nbs, reports)
    with pytest.raises(ReproduceError, match=r"parameter fail = 1 is a int; expected bool"):
        reproduce([], {"fail": 1}, nbs, reports)
    with pytest.raises(ReproduceError, match=r"parameter seed = True is a bool; expected int"):
        reproduce([], {"seed": True}, nbs, reports)
    assert not reports.exists()  # nothing ran
    assert reproduce(["00"], {"nap": 0, "label": [1, "x"]}, nbs, reports) == 0  # int for a float; None takes any


def test_failing_notebook_keeps_previous_report_and_others_run(course):
    nbs, reports = course
    assert reproduce(["01"], {"seed": 1, "profile": "smoke"}, nbs, reports) == 0
    good = (reports / "01_b.ipynb").read_bytes()
    assert (reports / "01_b.html").exists()
    assert reproduce(["00-02"], {"seed": 2, "fail": True, "profile": "smoke"}, nbs, reports) == 1
    assert (reports / "01_b.ipynb").read_bytes() == good  # previous good report untouched
    for stem in ("00_a", "01_b", "02_c"):  # every notebook ran and failed on its own
        failed = nbformat.read(reports / f"{stem}.failed.ipynb", as_version=4)
        assert any(o.get("ename") == "RuntimeError" for c in failed.cells for o in c.get("outputs", []))
    summary = (reports / "summary.md").read_text()
    assert summary.count("**FAILED**") == 3 and "RuntimeError" in summary


def test_a_cell_over_the_time_limit_fails_like_an_error(course):
    nbs, reports = course
    assert reproduce(["02"], {"profile": "smoke"}, nbs, reports) == 0
    good = (reports / "02_c.ipynb").read_bytes()
    assert reproduce(["02"], {"nap": 30.0, "profile": "smoke"}, nbs, reports, cell_timeout=3) == 1
    assert (reports / "02_c.ipynb").read_bytes() == good and (reports / "02_c.failed.ipynb").exists()
    assert "a cell ran longer than 3 s" in (reports / "summary.md").read_text()


def test_success_writes_reports_summary_and_marks_stale_claims(course):
    nbs, reports = course
    (reports).mkdir()
    (reports / ".00_a.running.ipynb").write_text("left by a killed run")
    assert reproduce([], {"seed": 5, "profile": "smoke"}, nbs, reports) == 0
    assert not list(reports.glob(".*running*"))
    for stem in ("00_a", "01_b", "02_c"):
        assert (reports / f"{stem}.ipynb").exists() and (reports / f"{stem}.html").exists()
        doc = json.loads((reports / stem / "claims.json").read_text())
        assert doc["claims"][0]["ours"]["value"] == 0.5 and doc["run"]["seeds"] == [5]
    summary = (reports / "summary.md").read_text()
    assert summary.count("| c | 1 | 0.5 [0, 1] (n=9) | smoke | fails |") == 3 and "FAILED" not in summary
    assert "stale" not in summary
    assert reproduce(["01"], {"seed": 1, "profile": "smoke"}, nbs, reports) == 0
    summary = (reports / "summary.md").read_text()
    assert summary.count("**stale**") == 2 and "| 01_b | synthetic |" in summary


def test_seeds_aggregate_and_record(course, tmp_path):
    nbs, reports = course
    results = tmp_path / "results"
    assert reproduce(["00"], {"profile": "smoke"}, nbs, reports, seeds=[1, 2, 4], record_to=results) == 0
    assert all((reports / f"00_a.seed{s}.ipynb").exists() for s in (1, 2, 4))
    doc = json.loads((reports / "00_a" / "claims.json").read_text())
    row = doc["claims"][0]
    assert row["seeds"]["values"] == [0.1, 0.2, 0.4] and row["seeds"]["mean"] == pytest.approx(7 / 30)
    assert row["verdict"] == "inconclusive" and row["reason"] == "seeds disagree (2 holds, 1 fails)"
    assert doc["run"]["seeds"] == [1, 2, 4]
    rec = json.loads((results / "00_a" / "smoke.json").read_text())
    assert rec["claims"] == doc["claims"] and rec["wall_s"] > 0 and rec["tables"] == {"t": [{"seed": 1}]}
    assert "seeds 0.233 ± 0.153 (sd, 3 seeds)" in (reports / "summary.md").read_text()


def test_record_as_names_the_record(course, tmp_path, capsys):
    nbs, reports = course
    results = tmp_path / "results"
    assert reproduce(["01"], {"seed": 2, "profile": "smoke"}, nbs, reports, record_to=results, record_as="b_cpu") == 0
    assert [p.name for p in (results / "01_b").iterdir()] == ["b_cpu.json"]  # not smoke.json
    rec = json.loads((results / "01_b" / "b_cpu.json").read_text())
    assert rec["run"]["profile"] == "smoke" and rec["run"]["seeds"] == [2] and rec["wall_s"] > 0
    assert rec["claims"] == json.loads((reports / "01_b" / "claims.json").read_text())["claims"]
    for bad in ("../b", "a/b", "", ".hidden", "b.json", "a b"):
        with pytest.raises(ReproduceError, match="--record-as"):
            reproduce(["01"], {"profile": "smoke"}, nbs, reports, record_to=results, record_as=bad)
    with pytest.raises(ReproduceError, match="needs record_to"):
        reproduce(["01"], {"profile": "smoke"}, nbs, reports, record_as="b_cpu")
    # the command line rejects a bad name before any notebook runs (exit 2, the error on stderr)
    assert main(["06", "--profile", "smoke", "--record-as", "../escape"]) == 2
    assert "--record-as '../escape': expected a file stem" in capsys.readouterr().err


def test_papermill_sees_every_parameter_of_every_course_notebook():
    """papermill silently drops a parameter line it cannot parse (e.g. a comment containing '='), and then
    ``-p`` rejects that parameter as unknown: the names must agree with the cell parsed by ``ast``."""
    import papermill

    notebooks = list_notebooks(NOTEBOOKS)
    assert notebooks
    for path in notebooks:
        seen = set(papermill.inspect_notebook(str(path)))
        assert seen == set(notebook_parameters(path)), f"{path.name}: papermill sees {sorted(seen)}"


def test_refresh_executes_in_place_in_the_smoke_profile(course, monkeypatch):
    from lib.reproduce import refresh

    nbs, _ = course
    (nbs.parent / "reports").mkdir()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # refresh hides GPUs itself
    assert refresh(["01"], nbs) == 0
    nb = nbformat.read(nbs / "01_b.ipynb", as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'profile = "smoke"' in injected.source
    assert any("seed 0" in o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert refresh(["02"], nbs) == 0 and nbformat.read(nbs / "00_a.ipynb", as_version=4).cells[1].outputs == []
