"""Coursework: the student's function checked against the course's tested implementation.

Each exercise of ``exercises/NN_<topic>.ipynb`` is registered in :data:`EXERCISES` as ``"NN.name"``: the name
of the function the student writes, its reference (the ``lib`` function the paper notebook uses), fixed
hand cases (ties, masked entries, single frames, boundaries) and seeded random cases. ``check(name, fn)``
runs both on every case and prints ``PASS`` or the *smallest* failing input with the expected and the
actual value; it never shows the reference's code. A function still raising ``NotImplementedError`` is
"not attempted", any other exception an "error" with its message and input; no exception of the student's
function escapes ``check``, so an unfinished notebook still executes from top to bottom.

In a Jupyter kernel the outcome is also displayed as a JSON record under the MIME type :data:`MIME`, stored
in the executed notebook, where :mod:`lib.grading` reads it back (no side file, nothing unpickled).

Adding a sheet: register its exercises here (``"NN.<name>"``) and write
``exercises/NN_<topic>.ipynb`` with one stub cell (metadata ``exercise``) and one check cell per exercise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MIME = "application/vnd.pose-course.check+json"
STATUSES = ("passed", "failed", "not attempted", "error")
RTOL, ATOL = 1e-5, 1e-7  # float results must agree this closely (np.allclose)

Case = dict[str, Any]  # argument name -> value, in the function's positional order


@dataclass(frozen=True)
class Exercise:
    """One exercise: the student writes ``function``; ``reference`` is the course's implementation."""

    name: str  # "NN.short_name"
    function: str  # the name of the stub in the notebook
    reference: Callable[..., Any]
    cases: Callable[[], list[Case]]  # hand cases, then seeded random ones (same list every call)
    compare: Callable[[Case, Any, Any], str | None] | None = None  # None: same(); returns a reason or None

    @property
    def sheet(self) -> str:
        return self.name.split(".")[0]


@dataclass(frozen=True)
class Outcome:
    """What :func:`check` found: ``status`` one of :data:`STATUSES`, ``detail`` the reason in words."""

    name: str
    status: str
    detail: str
    cases: int  # how many cases were run

    @property
    def message(self) -> str:
        head = {"passed": "PASS", "failed": "FAIL", "not attempted": "NOT ATTEMPTED", "error": "ERROR"}
        return f"{head[self.status]} {self.name}" + (f": {self.detail}" if self.detail else "")


# ---------------------------------------------------------------------------------------------------------
# comparing results and showing inputs


def _numpy(x: Any) -> Any:
    if hasattr(x, "detach"):  # a torch tensor
        return x.detach().cpu().numpy()
    return x


def same(expected: Any, actual: Any) -> str | None:
    """``None`` when ``actual`` equals ``expected`` (tuples item by item, arrays/tensors by shape and value,
    floats within :data:`RTOL`/:data:`ATOL`, NaN equal to NaN, bools exactly), else the difference in words."""
    if isinstance(expected, tuple | list):
        if not isinstance(actual, tuple | list) or len(actual) != len(expected):
            return f"expected a tuple of {len(expected)} items, got {type(actual).__name__}"
        for k, (e, a) in enumerate(zip(expected, actual, strict=True)):
            if (why := same(e, a)) is not None:
                return f"item {k}: {why}"
        return None
    if expected is None:
        return None if actual is None else f"expected None, got {type(actual).__name__}"
    e = np.asarray(_numpy(expected))
    try:
        a = np.asarray(_numpy(actual))
        if a.dtype == object:
            raise TypeError
    except (TypeError, ValueError):
        return f"expected an array or number, got {type(actual).__name__}"
    if a.shape != e.shape:
        return f"expected shape {e.shape}, got shape {a.shape}"
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        return f"expected numbers, got dtype {a.dtype}"
    if e.dtype == bool:
        wrong = a != e
    else:
        with np.errstate(invalid="ignore"):
            wrong = ~np.isclose(a.astype(np.float64), e, rtol=RTOL, atol=ATOL, equal_nan=True)
    if not wrong.any():
        return None
    if e.ndim == 0:
        return f"expected {e.item()!r}, got {a.item()!r}"
    at = tuple(int(i) for i in np.argwhere(wrong)[0])
    first = f"first at index {at}: expected {e[at].item()!r}, got {a[at].item()!r}"
    return f"{int(wrong.sum())} of {e.size} values differ, {first}"


def show(x: Any) -> str:
    """A value as a student can paste it back: arrays with their shape and dtype, tensors marked as such."""
    if hasattr(x, "detach"):
        return f"torch.tensor({show(_numpy(x))}, dtype=torch.{str(x.dtype).removeprefix('torch.')})"
    if isinstance(x, np.ndarray):
        body = np.array2string(x, separator=", ", precision=6, threshold=400, max_line_width=110)
        body = body.replace("\n", "\n    ")
        return f"np.array({body}, dtype=np.{x.dtype})  # shape {x.shape}"
    if isinstance(x, tuple):
        return "(" + ", ".join(show(v) for v in x) + ("," if len(x) == 1 else "") + ")"
    return repr(x)


def case_size(case: Case) -> int:
    """How big a case is: its total number of array elements (scalars count 1); failures report the smallest."""
    return sum(int(np.size(_numpy(v))) if v is not None else 0 for v in case.values())


# ---------------------------------------------------------------------------------------------------------
# checking


def check(name: str, student_fn: Callable[..., Any], *, quiet: bool = False) -> Outcome:
    """Compare ``student_fn`` with the reference of exercise ``name`` on all its cases; print and return the
    :class:`Outcome` (in a Jupyter kernel also displayed as a :data:`MIME` record for the grader)."""
    if name not in EXERCISES:
        raise KeyError(f"no exercise {name!r}; known: {sorted(EXERCISES)}")
    ex = EXERCISES[name]
    outcome = _run(ex, student_fn)
    if not quiet:
        _emit(outcome)
    return outcome


def _run(ex: Exercise, student_fn: Callable[..., Any]) -> Outcome:
    if not callable(student_fn):
        return Outcome(ex.name, "error", f"expected a function, got {type(student_fn).__name__}", 0)
    cases = sorted(ex.cases(), key=case_size)  # stable: among equal sizes, hand cases first
    compare = ex.compare or (lambda case, e, a: same(e, a))
    failures = []
    for case in cases:
        expected = ex.reference(*copy.deepcopy(list(case.values())))
        try:
            actual = student_fn(*copy.deepcopy(list(case.values())))
        except NotImplementedError:
            return Outcome(ex.name, "not attempted", f"{ex.function} still raises NotImplementedError", 0)
        except Exception as e:  # the student's bug, reported with the input that triggers it
            return Outcome(ex.name, "error", f"{type(e).__name__}: {e}\n{_describe(ex, case)}", len(cases))
        why = compare(case, expected, actual)
        if why is not None:
            failures.append((case, expected, actual, why))
    if not failures:
        return Outcome(ex.name, "passed", f"all {len(cases)} cases", len(cases))
    case, expected, actual, why = failures[0]
    detail = (
        f"{len(failures)} of {len(cases)} cases wrong; the smallest: {why}\n{_describe(ex, case)}\n"
        f"  expected: {show(expected)}\n  got:      {show(actual)}"
    )
    return Outcome(ex.name, "failed", detail, len(cases))


def _describe(ex: Exercise, case: Case) -> str:
    args = "\n".join(f"  {k} = {show(v)}" for k, v in case.items())
    return f"{ex.function}(\n{args}\n)"


def _emit(outcome: Outcome) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python without IPython
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(outcome.message)
        return
    display({"text/plain": outcome.message, MIME: asdict(outcome)}, raw=True)


def reference(name: str) -> Callable[..., Any]:
    """The reference function of exercise ``name`` (tests fill the notebooks' stubs with it)."""
    return EXERCISES[name].reference


def sheet_exercises(sheet: str) -> list[str]:
    """The names of sheet ``sheet``'s exercises (``"02"`` -> ``["02.strict_pcp", ...]``), in order."""
    return [n for n, ex in EXERCISES.items() if ex.sheet == sheet]


# ---------------------------------------------------------------------------------------------------------
# the references (imported when used, so that a sheet's kernel loads only its own modules) and the cases


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(sum(name.encode()))  # one fixed seed per exercise


# 02 · strict PCP and the DTW recurrence


def _pcp_strict(pred: np.ndarray, gt: np.ndarray, thresh: float) -> np.ndarray:
    from lib.evaluation.metrics import pcp_sticks

    return pcp_sticks(pred, gt, thresh, strict=True)


def _lsp_person() -> np.ndarray:
    """A (1, 14, 2) lsp14 person on integer coordinates: every limb 4 long, the torso 8 (y down)."""
    xy = [(-2, 8), (-2, 4), (-2, 0), (2, 0), (2, 4), (2, 8)]  # right ankle .. left ankle
    xy += [(-10, -8), (-6, -8), (-2, -8), (2, -8), (6, -8), (10, -8)]  # right wrist .. left wrist
    xy += [(0, -8), (0, -12)]  # neck, head top
    return np.array([xy], np.float64)


def _pcp_cases() -> list[Case]:
    gt = _lsp_person()
    moved = []
    for joint, shift in ((6, (2.0, 0.0)), (6, (2.001, 0.0)), (0, (0.0, 3.0)), (13, (2.5, 0.0)), (8, (0.0, -1.0))):
        p = gt.copy()
        p[0, joint] += shift
        moved.append(p)
    nan_gt = gt.copy()
    nan_gt[0, 3] = np.nan  # a missing left hip: the torso and the left upper leg are not correct
    cases = [{"pred": gt.copy(), "gt": gt, "thresh": 0.5}]
    cases += [{"pred": p, "gt": gt, "thresh": 0.5} for p in moved]
    cases += [{"pred": gt + 1.0, "gt": nan_gt, "thresh": 0.5}, {"pred": moved[3], "gt": gt, "thresh": 1.0}]
    rng = _rng("02.strict_pcp")
    for n in (1, 2, 3, 5, 8):
        g = rng.normal(0, 20, (n, 14, 2))
        cases.append({"pred": g + rng.normal(0, rng.choice([2.0, 5.0, 10.0]), g.shape), "gt": g, "thresh": 0.5})
    cases.append({"pred": g + rng.normal(0, 6, g.shape), "gt": g, "thresh": 0.3})
    return cases


def _dtw_score(sim: np.ndarray) -> float:
    from lib.evaluation.dtw import dtw_similarity

    return dtw_similarity(sim)[0]


def _dtw_cases() -> list[Case]:
    cases = [
        {"sim": np.array([[0.5]])},
        {"sim": np.array([[1.0, -1.0, 0.5]])},  # a single query frame
        {"sim": np.array([[0.2], [0.3], [-0.4]])},
        {"sim": np.array([[1.0, 0.0], [0.0, 1.0]])},
        {"sim": np.ones((3, 3))},  # ties everywhere
        {"sim": -np.ones((3, 4))},  # negative: the shortest path (diagonal) is best
        {"sim": np.array([[1.0, -5.0, -5.0], [-5.0, -5.0, 1.0]])},
    ]
    rng = _rng("02.dtw_score")
    for tq, td in ((2, 3), (4, 4), (5, 3), (6, 7), (3, 8)):
        cases.append({"sim": rng.uniform(-1, 1, (tq, td)).round(3)})
    return cases


# 03 · flow-block flip and reversal, the top-k heatmap centroid


def _flip(block: np.ndarray) -> np.ndarray:
    from lib.flow import flip_flow_block

    return flip_flow_block(block)


def _reverse(block: np.ndarray) -> np.ndarray:
    from lib.flow import reverse_flow_block

    return reverse_flow_block(block)


def _block_cases(name: str) -> list[Case]:
    cases = [
        {"block": np.array([[[1.0]], [[2.0]]])},  # delta = 1, a 1x1 map
        {"block": np.arange(2 * 2 * 2 * 3, dtype=np.float64).reshape(4, 2, 3)},  # delta = 2, 2x3 maps
        {"block": np.arange(6 * 1 * 4, dtype=np.float64).reshape(6, 1, 4) - 10},  # delta = 3, one row
    ]
    rng = _rng(name)
    cases.append({"block": rng.normal(size=(2, 6, 3, 5))})  # a batch of two blocks
    cases.append({"block": rng.normal(size=(8, 4, 4))})
    return cases


def _centroids(heatmaps: np.ndarray, k: int) -> np.ndarray:
    from lib.evaluation.heatmap_pose import heatmap_centroids

    return heatmap_centroids(heatmaps, k)


def _centroid_cases() -> list[Case]:
    one = np.zeros((1, 1, 3, 5), np.float32)
    one[0, 0, 2, 1] = 1.0  # a single hot pixel, row 2 / column 1 of a 3x5 map
    two = np.zeros((1, 1, 4, 4), np.float32)
    two[0, 0, 0, 0] = two[0, 0, 3, 2] = 5.0  # two tied maxima, both taken with k = 2
    grid = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    cases = [
        {"heatmaps": one, "k": 1},
        {"heatmaps": two, "k": 2},
        {"heatmaps": grid, "k": 12},  # every pixel: the map's centre
        {"heatmaps": grid, "k": 3},
        {"heatmaps": -grid, "k": 2},  # negative values: still the highest ones
    ]
    rng = _rng("03.heatmap_centroids")
    for b, j, h, w, k in ((1, 2, 5, 7, 4), (2, 3, 6, 6, 5), (3, 2, 8, 5, 1)):
        cases.append({"heatmaps": rng.normal(size=(b, j, h, w)).astype(np.float32), "k": k})
    return cases


# 04 · box IoU, the circulant filter and repetition mining


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from lib.methods.spatiotemporal import iou

    return iou(a, b)


def _iou_cases() -> list[Case]:
    box = np.array([0.0, 0.0, 2.0, 2.0])
    pairs = [
        (box, box),  # identical: 1
        (box, np.array([1.0, 1.0, 3.0, 3.0])),  # overlapping corners: 1 / 7
        (np.array([0.0, 0.0, 4.0, 4.0]), np.array([1.0, 1.0, 3.0, 3.0])),  # nested: 4 / 16
        (box, np.array([3.0, 0.0, 5.0, 2.0])),  # disjoint in x only
        (box, np.array([3.0, 4.0, 5.0, 7.0])),  # disjoint in x and in y: both sides negative
        (box, np.array([2.0, 0.5, 4.0, 1.5])),  # touching along an edge
        (box, np.array([2.0, 2.0, 3.0, 3.0])),  # touching at a corner
        (np.array([1.0, 1.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0, 1.0])),  # two empty boxes: 0
        (np.array([1.0, 1.0, 1.0, 3.0]), box),  # an empty box inside another
        (np.array([0.5, 1.5, 10.25, 4.0]), np.array([2.0, 0.0, 6.5, 12.0])),
    ]
    cases = [{"a": a, "b": b} for a, b in pairs]
    cases.append({"a": np.stack([a for a, _ in pairs]), "b": box})  # (n, 4) against one box
    rng = _rng("04.box_iou")

    def boxes(*shape: int) -> np.ndarray:
        lo = rng.uniform(0, 10, (*shape, 2))
        return np.concatenate([lo, lo + rng.uniform(0, 6, (*shape, 2))], -1).round(2)

    for n in (3, 6, 12):
        cases.append({"a": boxes(n), "b": boxes(n)})
    cases.append({"a": boxes(4, 1), "b": boxes(1, 5)})  # every pair of two sets: (4, 5)
    return cases


def _circulant(S: np.ndarray, size: int) -> np.ndarray:
    from lib.methods.spatiotemporal import circulant_filter

    return circulant_filter(S, size)


def _circulant_cases() -> list[Case]:
    grid = np.arange(16, dtype=np.float64).reshape(4, 4)
    stripe = np.eye(6) + np.eye(6, k=3) + np.eye(6, k=-3)  # a repetition every 3 frames
    stripe[1, 5] = 4.0  # an isolated coincidence
    cases = [
        {"S": np.array([[2.0]]), "size": 3},  # one frame
        {"S": grid, "size": 1},  # size 1: unchanged
        {"S": grid, "size": 3},
        {"S": grid[::-1].copy(), "size": 3},  # the anti-diagonal direction must not be averaged
        {"S": np.array([[1.0, 2.0], [3.0, 5.0]]), "size": 5},  # filter larger than the video
        {"S": stripe, "size": 3},
    ]
    rng = _rng("04.circulant_filter")
    for T, size in ((5, 3), (8, 5), (12, 5), (10, 7)):
        S = rng.uniform(0, 2, (T, T))
        cases.append({"S": ((S + S.T) / 2).round(3), "size": size})
    return cases


def _mine(S: np.ndarray, min_sep: int, quantile: float) -> np.ndarray:
    from lib.methods.spatiotemporal import mine_repetitions

    return mine_repetitions(S, min_sep, quantile)


def _mine_cases() -> list[Case]:
    i, j = np.indices((6, 6))
    period2 = np.where((i - j) % 2 == 0, 2.0, 0.0)  # ties: every other frame is as similar
    ramp = 2.0 - np.abs(i - j) / 6  # the nearest allowed partner is the best
    far = np.zeros((9, 9))
    far[0, 8] = far[8, 0] = 1.0
    cases = [
        {"S": np.array([[2.0]]), "min_sep": 8, "quantile": 0.95},  # a video shorter than min_sep: no pair
        {"S": np.full((8, 8), 2.0), "min_sep": 8, "quantile": 0.95},  # exactly min_sep frames: no pair
        {"S": far, "min_sep": 8, "quantile": 0.95},  # one pair, min_sep apart
        {"S": period2, "min_sep": 2, "quantile": 0.95},  # ties: the first (smallest j) partner
        {"S": period2, "min_sep": 3, "quantile": 0.5},
        {"S": ramp, "min_sep": 2, "quantile": 1.0},  # kept only at the maximum itself
        {"S": ramp, "min_sep": 4, "quantile": 0.0},  # every row keeps its partner
    ]
    rng = _rng("04.mine_repetitions")
    for T, min_sep, q in ((10, 3, 0.8), (16, 4, 0.9), (20, 5, 0.5), (24, 8, 0.95)):
        S = rng.uniform(0, 2, (T, T))
        cases.append({"S": ((S + S.T) / 2).round(3), "min_sep": min_sep, "quantile": q})
    cases.append({"S": rng.uniform(0, 2, (12, 12)).round(3), "min_sep": 3, "quantile": 0.8})  # not symmetric
    return cases


# 05 · the Eq. 1 energy and its exact minimiser


def _energy(pi: np.ndarray, D: np.ndarray, lam1: float, lam2: float, lam3: float, outlier_cost: float) -> float:
    from lib.methods.matching import matching_energy

    return matching_energy(pi, D, lam1, lam2, lam3, outlier_cost)


def _match_dp(D: np.ndarray, lam1: float, lam2: float, lam3: float, outlier_cost: float) -> np.ndarray:
    from lib.methods.matching import match_sequences_dp

    return match_sequences_dp(D, lam1, lam2, lam3, outlier_cost)


def _lams(rng: np.random.Generator) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in zip(("lam1", "lam2", "lam3", "outlier_cost"), rng.uniform(0, 2, 4).round(2), strict=True)
    }


def _energy_cases() -> list[Case]:
    D = np.arange(12, dtype=np.float64).reshape(3, 4) / 4
    lams = {"lam1": 1.0, "lam2": 2.0, "lam3": 0.5, "outlier_cost": 3.0}
    cases = [
        {"pi": np.array([2]), "D": D[:1], **lams},  # a single frame: its distance only
        {"pi": np.array([-1]), "D": D[:1], **lams},
        {"pi": np.array([0, 1, 2]), "D": D, **lams},  # in order: free transitions
        {"pi": np.array([3, 1, 1]), "D": D, **lams},  # back in time, then one-to-many
        {"pi": np.array([0, 3, -1]), "D": D, **lams},  # a skip of two frames, then an outlier
        {"pi": np.array([-1, 0, -1]), "D": D, **lams},  # outliers: no pairwise term
        {"pi": np.array([1, -1, 3]), "D": D, **lams},
    ]
    rng = _rng("05.matching_energy")
    for n, m in ((2, 5), (4, 3), (5, 6), (6, 6)):
        cases.append({"pi": rng.integers(-1, m, n), "D": rng.uniform(0, 2, (n, m)).round(2), **_lams(rng)})
    return cases


def _dp_cases() -> list[Case]:
    lams = {"lam1": 1.0, "lam2": 0.5, "lam3": 0.25, "outlier_cost": 1.5}
    cases = [
        {"D": np.array([[2.0, 0.5, 1.0]]), **lams},  # a single frame
        {"D": np.array([[2.0, 3.0]]), **lams},  # a single frame, best as an outlier
        {"D": np.zeros((3, 3)), **lams},  # ties: any in-order matching
        {"D": np.full((2, 3), 5.0), **lams},  # every frame an outlier
        {"D": np.array([[0.0, 9.0, 9.0, 9.0], [9.0, 9.0, 9.0, 0.0]]), **lams},  # a skip beats two distances
        {"D": np.array([[9.0, 0.0], [0.0, 9.0]]), **lams},  # back in time costs lam1
        {"D": np.array([[0.0, 9.0], [0.0, 9.0], [0.0, 9.0]]), **lams},  # one-to-many costs lam2
    ]
    rng = _rng("05.match_sequences_dp")
    for n, m in ((2, 2), (3, 5), (5, 4), (6, 8), (8, 6)):
        cases.append({"D": rng.uniform(0, 3, (n, m)).round(2), **_lams(rng)})
    return cases


def _optimal_energy(case: Case, expected: Any, actual: Any) -> str | None:
    """A matching is right when it is valid and as cheap as the reference's (ties may differ)."""
    D = case["D"]
    n, m = D.shape
    pi = np.asarray(_numpy(actual))
    if pi.shape != (n,) or not np.issubdtype(pi.dtype, np.integer):
        return f"expected an int array of shape ({n},), got {pi.dtype} of shape {pi.shape}"
    if pi.min() < -1 or pi.max() > m - 1:
        return f"pi values must lie in [-1, {m - 1}], got range [{pi.min()}, {pi.max()}]"
    costs = [case[k] for k in ("lam1", "lam2", "lam3", "outlier_cost")]
    best, got = _energy(expected, D, *costs), _energy(pi, D, *costs)
    if got > best + 1e-9:
        return f"energy {got:.6g}, but the optimum is {best:.6g}"
    return None


# 06 · the masked Eq. 5 loss and the first-pose normalisation


def _skip_loss(pred_past: Any, pred_future: Any, x: Any, m: Any) -> Any:
    from lib.methods.skip_pose import skip_loss

    return skip_loss(pred_past, pred_future, x, m)


def _skip_loss_cases() -> list[Case]:
    import torch

    def t(a: Any) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float64)

    x1 = t([[[[[1.0, 2.0]]], [[[0.0, 0.0]]], [[[3.0, -1.0]]]]])  # B = 1, T = 1, J = 1
    p1, f1 = t([[[[0.0, 0.0]]]]), t([[[[1.0, 1.0]]]])
    cases = [
        {"pred_past": p1, "pred_future": f1, "x": x1, "m": torch.ones(1, 3, 1, 1, dtype=torch.bool)},
        {"pred_past": None, "pred_future": f1, "x": x1, "m": torch.ones(1, 3, 1, 1, dtype=torch.bool)},
        {"pred_past": p1, "pred_future": f1, "x": x1, "m": torch.tensor([[[[True]], [[True]], [[False]]]])},
        {"pred_past": p1, "pred_future": f1, "x": x1, "m": torch.zeros(1, 3, 1, 1, dtype=torch.bool)},
    ]
    gen = torch.Generator().manual_seed(6)
    for b, T, J, keep, past in (
        (2, 2, 3, 0.7, True),
        (3, 4, 5, 0.5, True),
        (4, 3, 13, 0.8, False),
        (1, 5, 2, 0.3, True),
    ):
        x = torch.randn(b, 3, T, J, 2, generator=gen, dtype=torch.float64)
        m = torch.rand(b, 3, T, J, generator=gen) < keep
        x = x * m.unsqueeze(-1)  # masked inputs are zeros, as the notebooks feed them
        pp = torch.randn(b, T, J, 2, generator=gen, dtype=torch.float64) if past else None
        cases.append({"pred_past": pp, "pred_future": torch.randn(b, T, J, 2, generator=gen, dtype=torch.float64),
                      "x": x, "m": m})  # fmt: skip
    return cases


def _normalize_first(poses: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from lib.methods.skip_pose import normalize_sequence

    return normalize_sequence(poses, mask, reference="first")


def _normalize_cases() -> list[Case]:
    two = np.array([[[10.0, 20.0], [30.0, 60.0]]])  # one frame, two keypoints
    seq = np.array([[[0.0, 0.0], [4.0, 2.0], [2.0, 1.0]], [[2.0, 2.0], [6.0, 6.0], [8.0, 0.0]]])
    line = seq.copy()
    line[0, :, 1] = 5.0  # the first pose has no height: the next pose sets the map
    nan = seq.copy()
    nan[0, 2] = np.nan  # a NaN keypoint counts as masked
    ones = np.ones(seq.shape[:2], bool)
    first_one = ones.copy()
    first_one[0, 1:] = False  # one visible keypoint in the first pose: not enough
    cases = [
        {"poses": two, "mask": np.ones((1, 2), bool)},
        {"poses": seq, "mask": ones},
        {"poses": seq, "mask": np.array([[True, True, False], [True, False, True]])},
        {"poses": seq, "mask": first_one},
        {"poses": line, "mask": ones},
        {"poses": nan, "mask": ones},
        {"poses": seq, "mask": np.zeros_like(ones)},  # nothing visible: the fallback map
    ]
    rng = _rng("06.normalize_first_pose")
    for T, J, keep in ((3, 4, 0.8), (5, 13, 0.7), (8, 13, 0.9)):
        cases.append({"poses": rng.uniform(0, 200, (T, J, 2)).round(1), "mask": rng.random((T, J)) < keep})
    return cases


# 07 · the DSL loss (Eq. 5) and the gravity losses


def _dsl(z_m: Any, z_n: Any, d: Any, d_max: float) -> Any:
    from lib.methods.temporal_representation import distance_similarity_loss

    return distance_similarity_loss(z_m, z_n, d, d_max)


def _dsl_cases() -> list[Case]:
    import torch

    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0], [0.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    w = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [-3.0, -4.0]], dtype=torch.float64)
    cases = [
        {"z_m": z[:1], "z_n": z[:1], "d": torch.tensor([0.0], dtype=torch.float64), "d_max": 8.0},
        {"z_m": z, "z_n": w, "d": torch.tensor([4.0, 2.0, 8.0, 12.0, 6.0], dtype=torch.float64), "d_max": 8.0},
        {"z_m": z, "z_n": w, "d": torch.tensor([0.0, 1.0, 3.0, 5.0, 7.0], dtype=torch.float64), "d_max": 8.0},
        {"z_m": z, "z_n": w, "d": torch.tensor([20.0, 9.0, 10.0, 4.5, 3.5], dtype=torch.float64), "d_max": 9.0},
    ]
    gen = torch.Generator().manual_seed(7)
    for b, dim, d_max in ((3, 4, 10.0), (6, 8, 16.0), (8, 3, 6.0)):
        d = torch.randint(0, int(2 * d_max), (b,), generator=gen).to(torch.float64)
        zm, zn = (torch.randn(b, dim, generator=gen, dtype=torch.float64) for _ in range(2))
        cases.append({"z_m": zm, "z_n": zn, "d": d, "d_max": d_max})
    return cases


def _const_acc(u: Any) -> Any:
    from lib.methods.stn import constant_acceleration_loss

    return constant_acceleration_loss(u)


def _order(u: Any, tau: float) -> Any:
    from lib.methods.stn import order_loss

    return order_loss(u, tau)


def _height_cases(name: str, taus: tuple[float, ...]) -> list[Case]:
    import torch

    t = torch.arange(4, dtype=torch.float64)
    u = torch.stack([0.1 * t**2 - 0.5, 0.2 * t, t**3 / 10, -0.3 * t, torch.zeros(4), 0.05 * (t - 1) ** 2])
    rng = torch.Generator().manual_seed(sum(name.encode()))
    rand = [torch.rand(b, 4, generator=rng, dtype=torch.float64) * 2 - 1 for b in (1, 3, 6)]
    return [
        {"u": v, **({"tau": tau} if taus else {})}
        for v in (u[:1], u[1:2], u[2:3], u[3:4], u, *rand)
        for tau in (taus or (None,))
    ]


# ---------------------------------------------------------------------------------------------------------
# the registry: sheet by sheet, in the order of the notebooks

EXERCISES: dict[str, Exercise] = {
    ex.name: ex
    for ex in (
        Exercise("02.strict_pcp", "pcp_sticks_strict", _pcp_strict, _pcp_cases),
        Exercise("02.dtw_score", "dtw_score", _dtw_score, _dtw_cases),
        Exercise("03.flip_flow_block", "flip_flow_block", _flip, lambda: _block_cases("03.flip_flow_block")),
        Exercise("03.reverse_flow_block", "reverse_flow_block", _reverse, lambda: _block_cases("03.reverse")),
        Exercise("03.heatmap_centroids", "heatmap_centroids", _centroids, _centroid_cases),
        Exercise("04.box_iou", "box_iou", _iou, _iou_cases),
        Exercise("04.circulant_filter", "circulant_filter", _circulant, _circulant_cases),
        Exercise("04.mine_repetitions", "mine_repetitions", _mine, _mine_cases),
        Exercise("05.matching_energy", "matching_energy", _energy, _energy_cases),
        Exercise("05.match_sequences_dp", "match_sequences_dp", _match_dp, _dp_cases, _optimal_energy),
        Exercise("06.skip_loss", "skip_loss", _skip_loss, _skip_loss_cases),
        Exercise("06.normalize_first_pose", "normalize_first_pose", _normalize_first, _normalize_cases),
        Exercise("07.dsl_loss", "dsl_loss", _dsl, _dsl_cases),
        Exercise(
            "07.constant_acceleration_loss",
            "constant_acceleration_loss",
            _const_acc,
            lambda: _height_cases("07.constant_acceleration_loss", ()),
        ),
        Exercise("07.order_loss", "order_loss", _order, lambda: _height_cases("07.order_loss", (0.0, 0.1, 0.5))),
    )
}
