"""lib.exercises: every reference passes its own check, a stub is "not attempted", plausible wrong answers are
caught (with the smallest failing input), and the exercise notebooks match the registry."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib.evaluation.metrics import pcp_stick_endpoints
from lib.exercises import EXERCISES, MIME, check, reference, same, sheet_exercises, show

EXERCISE_DIR = Path(__file__).resolve().parent.parent / "exercises"

# ---------------------------------------------------------------------------------------------------------
# plausible wrong answers, at least two per exercise


def _pcp(pred, gt, thresh, length_of="gt", strict=True, inclusive=True):
    P, G = pcp_stick_endpoints(pred), pcp_stick_endpoints(gt)
    ref = G if length_of == "gt" else P
    limit = thresh * np.linalg.norm(ref[:, :, 0] - ref[:, :, 1], axis=-1)[..., None]
    err = np.linalg.norm(P - G, axis=-1)
    if not strict:
        return err.mean(-1) <= limit[..., 0]
    return ((err <= limit) if inclusive else (err < limit)).all(-1)


def _dtw(sim, diagonal=True, free_start=False, best=max):
    tq, td = sim.shape
    acc = np.full((tq + 1, td + 1), -np.inf if best is max else np.inf)
    if free_start:
        acc[0, :] = acc[:, 0] = 0.0
    acc[0, 0] = 0.0
    for i in range(tq):
        for j in range(td):
            prev = [acc[i, j + 1], acc[i + 1, j]] + ([acc[i, j]] if diagonal else [])
            acc[i + 1, j + 1] = sim[i, j] + best(prev)
    return float(acc[tq, td])


def _flip(block, negate=(True, False), axis=-1):
    delta = block.shape[-3] // 2
    out = np.flip(block, axis).copy()
    if negate[0]:
        out[..., :delta, :, :] *= -1
    if negate[1]:
        out[..., delta:, :, :] *= -1
    return out


def _reverse(block, negate=True, per_component=True):
    delta = block.shape[-3] // 2
    order = [*range(delta - 1, -1, -1), *range(2 * delta - 1, delta - 1, -1)] if per_component else None
    out = block[..., order, :, :] if per_component else block[..., ::-1, :, :]
    return -out if negate else out.copy()


def _centroids(heatmaps, k, centre=0.5, swap=False, modulo="w"):
    b, j, h, w = heatmaps.shape
    top = np.argsort(-heatmaps.reshape(b, j, h * w), axis=-1, kind="stable")[..., :k]
    div = w if modulo == "w" else h
    col, row = top % div, top // div
    xy = np.stack([row, col] if swap else [col, row], -1) + centre
    return xy.mean(2)


def _iou(a, b, clip="sides", pixel=0.0, subtract=True, guard=True):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + pixel
    h = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + pixel
    if clip == "sides":
        w, h = np.maximum(w, 0), np.maximum(h, 0)
    inter = np.maximum(w * h, 0) if clip == "product" else w * h
    area_a = (a[..., 2] - a[..., 0] + pixel) * (a[..., 3] - a[..., 1] + pixel)
    area_b = (b[..., 2] - b[..., 0] + pixel) * (b[..., 3] - b[..., 1] + pixel)
    union = area_a + area_b - (inter if subtract else 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = inter / union
    return np.where(union > 0, out, 0.0) if guard else out


def _circulant(S, size, mode="edge", anti=False, mean=True):
    r = size // 2
    P = np.pad(S, r, mode=mode)
    T = len(S)
    out = sum(P[k : k + T, size - 1 - k : size - 1 - k + T] if anti else P[k : k + T, k : k + T] for k in range(size))
    return out / size if mean else out


def _mine(S, min_sep, quantile, band_in_argmax=True, strict=False, sep_strict=False, last_tie=False):
    T = len(S)
    i, j = np.indices((T, T))
    band = (np.abs(i - j) > min_sep) if sep_strict else (np.abs(i - j) >= min_sep)
    if not band.any():
        return np.zeros((0, 2), np.int64)
    thr = np.quantile(S[band], quantile)
    masked = np.where(band, S, -np.inf) if band_in_argmax else S
    best = (T - 1 - masked[:, ::-1].argmax(1)) if last_tie else masked.argmax(1)
    value = masked[np.arange(T), best]
    keep = band.any(1) & ((value > thr) if strict else (value >= thr))
    pairs = np.sort(np.column_stack([np.flatnonzero(keep), best[keep]]), axis=1)
    return np.unique(pairs, axis=0)


def _energy(pi, D, lam1, lam2, lam3, outlier_cost, skip_minus_one=False, outlier_pairs=False):
    e = sum(outlier_cost if p < 0 else D[j, p] for j, p in enumerate(pi))
    for a, b in zip(pi[:-1], pi[1:], strict=True):
        if (a < 0 or b < 0) and not outlier_pairs:
            continue
        e += lam1 * (a > b) + lam2 * (a == b) + lam3 * (a + 1 < b) * (b - a - (1 if skip_minus_one else 0))
    return float(e)


def _dp(D, lam1, lam2, lam3, outlier_cost, outliers=True, skip_cost=True):
    n, m = D.shape
    s = m + 1 if outliers else m
    a, b = np.arange(s)[:, None], np.arange(s)[None, :]
    P = lam1 * (a > b) + lam2 * (a == b) + (lam3 * (a + 1 < b) * (b - a) if skip_cost else 0)
    if outliers:
        P[m, :] = P[:, m] = 0
    U = np.concatenate([D, np.full((n, 1), outlier_cost)], 1)[:, :s]
    C = U.copy()
    for j in range(1, n):
        C[j] += (C[j - 1][:, None] + P).min(0)
    state = [int(C[-1].argmin())]
    for j in range(n - 1, 0, -1):
        state.append(int((C[j - 1] + P[:, state[-1]]).argmin()))
    pi = np.array(state[::-1])
    return np.where(pi == m, -1, pi)


def _skip_loss(pred_past, pred_future, x, m, masked=True, divide=4.0, mask_chunk=(0, 2)):
    def term(pred, k):
        w = m[:, mask_chunk[0] if k == 0 else mask_chunk[1]].unsqueeze(-1).to(x.dtype) if masked else 1.0
        return (w * (pred - x[:, k]) ** 2).flatten(1).sum(1)

    loss = term(pred_future, 2) + (term(pred_past, 0) if pred_past is not None else 0)
    return loss.mean() / divide


def _normalize(poses, mask, box="first", zero_masked=True, drop_nan=True):
    vis = mask & np.isfinite(poses).all(2) if drop_nan else mask.copy()
    lo, span = np.zeros(2), np.full(2, 2.0)
    frames = [poses[vis]] if box == "sequence" else [poses[t][vis[t]] for t in range(len(poses))]
    for pts in frames:
        if len(pts) >= 2 and (np.ptp(pts, axis=0) > 0).all():
            lo, span = pts.min(0), np.ptp(pts, axis=0)
            break
    out = (poses - lo) / span * 2 - 1
    if zero_masked:
        out[~vis] = 0
    return out.astype(np.float32), vis


def _dsl(z_m, z_n, d, d_max, clip=True, absolute=True):
    sim = F.cosine_similarity(z_m, z_n, dim=1)
    r = 2 * d / d_max
    far = (r - 1).clamp(max=1) if clip else r - 1
    return torch.where(r <= 1, (1 - r) * (1 - sim).abs(), far * (sim.abs() if absolute else sim))


WRONG = {
    "02.strict_pcp": [
        lambda p, g, t: _pcp(p, g, t, strict=False),  # loose PCP
        lambda p, g, t: _pcp(p, g, t, length_of="pred"),  # the predicted length judges
        lambda p, g, t: _pcp(p, g, t, inclusive=False),  # boundary excluded
    ],
    "02.dtw_score": [
        lambda s: _dtw(s, diagonal=False),
        lambda s: _dtw(s, free_start=True),  # the path may start anywhere on the border
        lambda s: _dtw(s, best=min),
    ],
    "03.flip_flow_block": [
        lambda b: _flip(b, negate=(False, False)),
        lambda b: _flip(b, negate=(True, True)),
        lambda b: _flip(b, axis=-2),  # mirrored upside down
    ],
    "03.reverse_flow_block": [
        lambda b: _reverse(b, negate=False),
        lambda b: _reverse(b, per_component=False),  # all 2 delta channels reversed together
    ],
    "03.heatmap_centroids": [
        lambda h, k: _centroids(h, k, centre=0.0),  # off by half a pixel
        lambda h, k: _centroids(h, k, swap=True),  # (row, column) instead of (x, y)
        lambda h, k: _centroids(h, k, modulo="h"),
    ],
    "04.box_iou": [
        lambda a, b: _iou(a, b, clip=None),  # the intersection not clipped at 0
        lambda a, b: _iou(a, b, clip="product"),  # clipped after the product: two negative sides give > 0
        lambda a, b: _iou(a, b, pixel=1.0),  # the inclusive-pixel convention (x1 - x0 + 1)
        lambda a, b: _iou(a, b, subtract=False),  # the intersection counted twice in the union
        lambda a, b: _iou(a, b, guard=False),  # two empty boxes: NaN
    ],
    "04.circulant_filter": [
        lambda S, size: _circulant(S, size, mode="constant"),  # zero padding
        lambda S, size: _circulant(S, size, mode="wrap"),  # "circulant" read as periodic borders
        lambda S, size: _circulant(S, size, anti=True),  # the anti-diagonal
        lambda S, size: _circulant(S, size, mean=False),  # a sum, not a mean
    ],
    "04.mine_repetitions": [
        lambda *a: _mine(*a, band_in_argmax=False),  # no band exclusion: the diagonal wins
        lambda *a: _mine(*a, strict=True),  # > instead of >= at the quantile
        lambda *a: _mine(*a, sep_strict=True),  # |i - j| > min_sep: off by one
        lambda *a: _mine(*a, last_tie=True),  # the last of tied partners
    ],
    "05.matching_energy": [
        lambda *a: _energy(*a, skip_minus_one=True),  # off by one on the skip
        lambda *a: _energy(*a, outlier_pairs=True),  # pairwise terms charged around outliers
    ],
    "05.match_sequences_dp": [
        lambda D, *costs: D.argmin(1),  # greedy, no pairwise terms
        lambda *a: _dp(*a, outliers=False),
        lambda *a: _dp(*a, skip_cost=False),
    ],
    "06.skip_loss": [
        lambda *a: _skip_loss(*a, masked=False),  # missing mask
        lambda *a: _skip_loss(*a, divide=2.0),
        lambda *a: _skip_loss(*a, mask_chunk=(1, 1)),  # the current chunk's mask
    ],
    "06.normalize_first_pose": [
        lambda p, m: _normalize(p, m, box="sequence"),
        lambda p, m: _normalize(p, m, zero_masked=False),
        lambda p, m: _normalize(p, m, drop_nan=False),
    ],
    "07.dsl_loss": [
        lambda *a: _dsl(*a, clip=False),
        lambda *a: _dsl(*a, absolute=False),  # wrong sign: opposite codes rewarded
    ],
    "07.constant_acceleration_loss": [
        lambda u: (u[:, 0] - 2 * u[:, 1] + u[:, 2]) ** 2,  # a second difference
        lambda u: ((u[:, 0] + 3 * u[:, 1]) - (u[:, 3] + 3 * u[:, 2])) ** 2,  # coefficients swapped
    ],
    "07.order_loss": [
        lambda u, tau: F.relu(tau - (u[:, :-1] - u[:, 1:])).sum(1),  # the paper's y-up sign
        lambda u, tau: F.relu(tau - (u[:, 1:] - u[:, :-1])).mean(1),
        lambda u, tau: (tau - (u[:, 1:] - u[:, :-1])).sum(1),  # no hinge
    ],
}


def test_every_exercise_has_wrong_answers():
    assert set(WRONG) == set(EXERCISES)
    assert all(len(w) >= 2 for w in WRONG.values())


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_passes_and_stub_is_not_attempted(name):
    ok = check(name, reference(name), quiet=True)
    assert (ok.status, ok.detail) == ("passed", f"all {ok.cases} cases") and ok.cases >= 5

    def stub(*args):
        raise NotImplementedError

    assert check(name, stub, quiet=True).status == "not attempted"


@pytest.mark.parametrize("name,k", [(n, k) for n, w in WRONG.items() for k in range(len(w))])
def test_wrong_answer_is_caught(name, k):
    out = check(name, WRONG[name][k], quiet=True)
    assert out.status == "failed", out.message
    assert "cases wrong; the smallest: " in out.detail and "expected:" in out.detail and "got:" in out.detail


def test_the_smallest_failing_input_is_reported_and_the_reference_code_never(capsys):
    out = check("05.match_sequences_dp", WRONG["05.match_sequences_dp"][0])
    # greedy argmin fails first on the single frame whose best state is the outlier (energy 2 > 1.5)
    assert "D = np.array([[2., 3.]], dtype=np.float64)  # shape (1, 2)" in out.detail
    assert "energy 2, but the optimum is 1.5" in out.detail
    printed = capsys.readouterr().out
    assert printed.startswith("FAIL 05.match_sequences_dp: ")
    for ex in EXERCISES.values():  # the reference's body appears nowhere
        body = inspect.getsource(ex.reference).splitlines()[-1].strip()
        assert body not in printed


def test_an_exception_is_an_error_with_its_message_and_input():
    def broken(sim):
        raise ValueError("oops")

    out = check("02.dtw_score", broken, quiet=True)
    assert out.status == "error"
    assert out.detail.startswith("ValueError: oops\ndtw_score(\n  sim = np.array([[0.5]]")
    assert check("02.dtw_score", 3, quiet=True).status == "error"
    with pytest.raises(KeyError, match="no exercise '02.nope'"):
        check("02.nope", broken)


def test_inputs_are_not_shared_with_the_reference():
    """A student function that writes into its input cannot change the expected values."""

    def scribble(block):
        block[...] = 0
        return reference("03.flip_flow_block")(np.ones_like(block))

    assert check("03.flip_flow_block", scribble, quiet=True).status == "failed"


def test_same_compares_shapes_values_and_tuples():
    assert same(np.array([1.0, np.nan]), [1.0 + 1e-9, np.nan]) is None
    assert same(np.array([1.0, 2.0]), np.array([[1.0, 2.0]])) == "expected shape (2,), got shape (1, 2)"
    assert same(np.array([True, False]), np.array([True, True])).startswith("1 of 2 values differ, first at index (1,)")
    assert same((np.zeros(2), None), (np.zeros(2), None)) is None
    assert same((np.zeros(2), np.ones(1)), (np.zeros(2), np.zeros(1))).startswith("item 1: ")
    assert same(np.zeros(2), np.array(["a", "b"])) == "expected numbers, got dtype <U1"
    assert same(torch.tensor(2.0), 2.0) is None
    assert same(1.0, None) == "expected an array or number, got NoneType"
    assert (
        show(torch.tensor([1.0])) == "torch.tensor(np.array([1.], dtype=np.float32)  # shape (1,), dtype=torch.float32)"
    )


def test_the_record_for_the_grader_is_displayed_in_a_kernel(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.get_ipython", lambda: object())
    monkeypatch.setattr("IPython.display.display", lambda obj, raw: shown.append((obj, raw)))
    out = check("07.order_loss", reference("07.order_loss"))
    bundle, raw = shown[0]
    assert raw and bundle["text/plain"] == out.message == f"PASS 07.order_loss: all {out.cases} cases"
    assert json.loads(json.dumps(bundle[MIME])) == {"name": "07.order_loss", "status": "passed",
                                                    "detail": out.detail, "cases": out.cases}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# the exercise notebooks


def exercise_notebooks() -> list[Path]:
    return sorted(EXERCISE_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_every_sheet_of_the_registry_has_its_notebook():
    sheets = {p.name[:2] for p in exercise_notebooks()}
    assert sheets == {ex.sheet for ex in EXERCISES.values()}


@pytest.mark.parametrize("path", exercise_notebooks(), ids=lambda p: p.name)
def test_notebook_has_equation_hints_stub_and_check_for_each_exercise(path):
    nb = json.loads(path.read_text())
    sheet = path.name[:2]
    assert nb["metadata"]["exercises"] == {"sheet": sheet}
    cells = nb["cells"]
    stubs = [i for i, c in enumerate(cells) if c["metadata"].get("exercise")]
    assert [cells[i]["metadata"]["exercise"] for i in stubs] == sheet_exercises(sheet)
    for i in stubs:
        name, src = cells[i]["metadata"]["exercise"], "".join(cells[i]["source"])
        fn = EXERCISES[name].function
        assert src.startswith(f"def {fn}(") and src.rstrip().endswith("raise NotImplementedError")
        hints, intro = cells[i - 1], cells[i - 2]
        assert hints["cell_type"] == "markdown" and hints["metadata"]["jupyter"]["source_hidden"] is True
        assert intro["cell_type"] == "markdown" and "$$" in "".join(intro["source"])  # the paper's equation
        assert "".join(cells[i + 1]["source"]) == f'check("{name}", {fn})'
        assert not cells[i + 1]["outputs"]  # shipped without outputs (and without solutions)
        namespace: dict = {}
        exec(compile(src, f"{path.name}:{name}", "exec"), namespace)  # the stub as handed out
        assert check(name, namespace[fn], quiet=True).status == "not attempted"
