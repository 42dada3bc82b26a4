"""Evaluation metrics of the five papers, each implemented once.

2D pose estimation (``pred`` and ``gt`` are ``(N, J, 2)`` pixel coordinates). All three count a part or
joint as correct when its error is ``<=`` the threshold (boundary included) and score only the ground-truth
joints that ``mask`` ``(N, J)`` keeps and that are finite: a masked-out or NaN ground-truth joint leaves the
denominator, it is never counted as wrong. A prediction must be finite wherever it is scored.

- :func:`pcp` / :func:`pcp_sticks` -- Percentage of Correct Parts, LSP convention (10 sticks);
  :func:`pcp_stick_endpoints` to draw them.
- :func:`pdj` -- Percentage of Detected Joints, normalised by the torso diameter (FLIC).
- :func:`pckh` -- Percentage of Correct Keypoints relative to the head size (MPII).

3D pose (``(N, J, 3)``, mm): :func:`mpjpe`, :func:`n_mpjpe` (scale-aligned), :func:`p_mpjpe` (Procrustes).

Retrieval and recognition:

- :func:`posture_retrieval_auc` -- the CliqueCNN / Olympic Sports posture protocol (ROC per anchor).
- :func:`normalise_pose`, :func:`pose_distance`, :func:`pose_retrieval_metrics` -- Kwak et al. 2016's
  retrieval metrics used by Sümer et al. 2017 on MPII.
- :func:`one_nn_accuracy`, :func:`per_class_average_precision` -- action recognition from (DTW) scores.

:func:`require_finite` is the check behind every "must be finite" error here and in :mod:`lib.evaluation.dtw`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from lib.skeleton import FORMATS, to_format


def require_finite(x: np.ndarray | torch.Tensor, name: str, axes: Sequence[str] = (), hint: str = "") -> None:
    """Raise ``ValueError`` naming the first non-finite entry of ``x`` (numpy or torch, any device).

    ``name`` is how the caller calls ``x``; ``axes`` names its axes, so the message reads e.g.
    ``scores[3, 5] (query 3, dictionary item 5) is nan; expected finite values``, then ``(hint)`` if given.
    """
    if isinstance(x, torch.Tensor):
        bad = ~torch.isfinite(x)
        if not bool(bad.any()):
            return
        idx = tuple(torch.nonzero(bad)[0].tolist())
    else:
        x = np.asarray(x)
        bad = ~np.isfinite(x)
        if not bad.any():
            return
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
    where = ", ".join(f"{a} {i}" for a, i in zip(axes, idx, strict=False))
    at = f"[{', '.join(map(str, idx))}]" if idx else ""
    raise ValueError(
        f"{name}{at}{f' ({where})' if where else ''} is {float(x[idx])}; expected finite values"
        + (f" ({hint})" if hint else "")
    )


def _pair(pred: np.ndarray, gt: np.ndarray, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or (dim is not None and pred.shape[-1] != dim):
        want = f"(N, J, {dim})" if dim else "(N, J, D)"
        raise ValueError(f"pred and gt must both be {want} arrays, got {pred.shape} and {gt.shape}")
    return pred, gt


def _finite_poses(
    pred: np.ndarray, gt: np.ndarray, dim: int | None = None, min_joints: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_pair`, then at least ``min_joints`` joints and finite values in both (3D metrics)."""
    pred, gt = _pair(pred, gt, dim)
    if pred.shape[1] < min_joints:
        raise ValueError(f"needs poses of at least {min_joints} joints, got shape {pred.shape}")
    require_finite(pred, "pred", ("pose", "joint", "coordinate"))
    require_finite(gt, "gt", ("pose", "joint", "coordinate"))
    return pred, gt


def _scored(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None, order: str = "") -> np.ndarray:
    """``(N, J)`` bool, the joints a 2D metric scores: ``mask`` (all by default) with finite ground truth.

    Predictions must be finite at every scored joint (a missing prediction is an error, not a miss);
    ``order`` names the joint order of the arrays in the error when it is not the caller's.
    """
    keep = np.ones(gt.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    if keep.shape != gt.shape[:2]:
        raise ValueError(f"mask must be (N, J) = {gt.shape[:2]} like gt, got {keep.shape}")
    keep = keep & np.isfinite(gt).all(-1)
    hint = "a scored joint needs a prediction; mask it out otherwise" + (f"; joints in {order} order" if order else "")
    require_finite(np.where(keep[..., None], pred, 0.0), "pred", ("pose", "joint", "coordinate"), hint)
    return keep


def _percent(ok: np.ndarray, scored: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """100 x share of ``ok`` among ``scored`` along ``axis``; NaN where nothing is scored."""
    n = scored.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, 100.0 * (ok & scored).sum(axis) / n, np.nan)


def _lsp14(joints: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "lsp14":
        if joints.shape[1] != 14:
            raise ValueError(f"fmt 'lsp14' needs 14 joints, got shape {joints.shape}")
        return joints
    if fmt in ("canonical", "h36m17"):
        return to_format(joints, "lsp14")
    raise ValueError(f"PCP needs joints in 'lsp14' or 'canonical' order, got fmt {fmt!r}")


# ---------------------------------------------------------------------------------------------------------
# 2D pose estimation

# the 10 LSP sticks as pairs of lsp14 indices; "mid_hip" and "mid_shoulder" (-1, -2) are midpoints
_MID_HIP, _MID_SHOULDER = -1, -2
PCP_STICKS: tuple[tuple[str, int, int], ...] = (
    ("head", 12, 13),  # neck - head top
    ("torso", _MID_HIP, _MID_SHOULDER),
    ("upper_arms", 9, 10),  # left shoulder - elbow
    ("upper_arms", 8, 7),
    ("lower_arms", 10, 11),  # left elbow - wrist
    ("lower_arms", 7, 6),
    ("upper_legs", 3, 4),  # left hip - knee
    ("upper_legs", 2, 1),
    ("lower_legs", 4, 5),  # left knee - ankle
    ("lower_legs", 1, 0),
)
PCP_PARTS = ("head", "torso", "upper_arms", "lower_arms", "upper_legs", "lower_legs")


def _stick_ends(j: np.ndarray, k: int) -> np.ndarray:
    if k == _MID_HIP:
        return (j[:, 2] + j[:, 3]) / 2
    if k == _MID_SHOULDER:
        return (j[:, 8] + j[:, 9]) / 2
    return j[:, k]


def pcp_stick_endpoints(joints: np.ndarray, fmt: str = "lsp14") -> np.ndarray:
    """End points of the 10 PCP sticks (order of :data:`PCP_STICKS`): ``(N, J, 2)`` -> ``(N, 10, 2, 2)``."""
    j = _lsp14(np.asarray(joints, np.float64), fmt)
    return np.stack([np.stack([_stick_ends(j, a), _stick_ends(j, b)], 1) for _, a, b in PCP_STICKS], 1)


def _pcp_inputs(
    pred: np.ndarray, gt: np.ndarray, fmt: str, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pred``, ``gt`` in lsp14 order and the ``(N, 10)`` bool sticks PCP scores: both ground-truth ends
    kept by ``mask`` and finite (a midpoint end needs both its joints)."""
    pred, gt = _pair(pred, gt, 2)
    if mask is not None and np.shape(mask) != gt.shape[:2]:
        raise ValueError(f"mask must be (N, J) = {gt.shape[:2]} like gt, got {np.shape(mask)}")
    m = np.ones(gt.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    pred, gt, m = _lsp14(pred, fmt), _lsp14(gt, fmt), _lsp14(m[..., None], fmt)[..., 0]
    joints = _scored(pred, gt, m, "" if fmt == "lsp14" else "lsp14")
    ends = {_MID_HIP: joints[:, 2] & joints[:, 3], _MID_SHOULDER: joints[:, 8] & joints[:, 9]}
    scored = np.stack([ends.get(a, joints[:, a]) & ends.get(b, joints[:, b]) for _, a, b in PCP_STICKS], 1)
    return pred, gt, scored


def pcp_sticks(
    pred: np.ndarray,
    gt: np.ndarray,
    thresh: float = 0.5,
    strict: bool = True,
    fmt: str = "lsp14",
    *,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """``(N, 10)`` bool: which of the LSP sticks (order of :data:`PCP_STICKS`) each prediction gets right.

    A stick is correct when its predicted end points lie within ``thresh`` x its *ground-truth* length of
    the true end points (``<=``, boundary included): both of them (``strict``, as Johnson & Everingham
    2010/2011 and Pishchulin et al. 2012 evaluate LSP), or on average (loose PCP, Ferrari et al. 2008). The
    torso runs from the hips' midpoint to the shoulders' midpoint. ``fmt``: ``lsp14`` or ``canonical`` joint
    order. ``mask`` ``(N, J)`` bool (in ``fmt`` order) keeps the joints to score; a stick with a masked-out
    or NaN ground-truth end joint is not scored and is ``False`` here -- :func:`pcp` leaves it out.
    """
    pred, gt, scored = _pcp_inputs(pred, gt, fmt, mask)
    out = np.zeros(scored.shape, bool)
    for s, (_, a, b) in enumerate(PCP_STICKS):
        g, p = gt[scored[:, s]], pred[scored[:, s]]
        ga, gb, pa, pb = _stick_ends(g, a), _stick_ends(g, b), _stick_ends(p, a), _stick_ends(p, b)
        length = np.linalg.norm(ga - gb, axis=1)  # the ground-truth limb length judges the prediction
        ea, eb = np.linalg.norm(pa - ga, axis=1), np.linalg.norm(pb - gb, axis=1)
        ok = (ea <= thresh * length) & (eb <= thresh * length) if strict else (ea + eb) / 2 <= thresh * length
        out[scored[:, s], s] = ok
    return out


def pcp(
    pred: np.ndarray,
    gt: np.ndarray,
    thresh: float = 0.5,
    strict: bool = True,
    fmt: str = "lsp14",
    *,
    mask: np.ndarray | None = None,
) -> dict[str, float]:
    """Percentage of Correct Parts (%, LSP convention): per part (left and right averaged) and ``total``.

    Keys: ``head``, ``torso``, ``upper_arms``, ``lower_arms``, ``upper_legs``, ``lower_legs``, ``total``
    (all 10 sticks). See :func:`pcp_sticks` for the criterion. Each percentage is over the scored sticks
    only (both ground-truth ends kept by ``mask`` and finite); a part with no scored stick is NaN, and no
    scored stick at all is an error.
    """
    ok = pcp_sticks(pred, gt, thresh, strict, fmt, mask=mask)
    scored = _pcp_inputs(pred, gt, fmt, mask)[2]
    if not scored.any():
        raise ValueError("PCP has no stick to score: every stick has a masked-out or NaN ground-truth end")
    names = np.array([p for p, _, _ in PCP_STICKS])
    out = {p: float(_percent(ok[:, names == p], scored[:, names == p], (0, 1))) for p in PCP_PARTS}
    out["total"] = float(_percent(ok, scored, (0, 1)))
    return out


def pdj(
    pred: np.ndarray,
    gt: np.ndarray,
    thresholds: Sequence[float],
    fmt: str | Sequence[str] = "lsp14",
    *,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Percentage of Detected Joints (%), ``(len(thresholds), J)``.

    A joint is detected when its error is ``<=`` ``threshold`` x the torso diameter, the distance between
    the ground-truth left shoulder and right hip (Toshev & Szegedy 2014 on FLIC; Purushwalkam & Gupta 2016
    report 0.1-0.4). ``fmt`` names the joint order: a :data:`lib.skeleton.FORMATS` name or the joint names
    themselves (FLIC: ``lib.data.flic.FLIC_JOINTS``); it must include both joints. Each joint's percentage
    is over the poses where it is scored: kept by ``mask`` ``(N, J)`` bool, finite in ``gt``, and in a pose
    whose two torso joints are scored too (a pose without a torso diameter is left out); NaN where none
    is, and nothing scored at all is an error.
    """
    pred, gt = _pair(pred, gt, 2)
    names = FORMATS.get(fmt) if isinstance(fmt, str) else tuple(fmt)
    if names is None or "l_shoulder" not in names or "r_hip" not in names or len(names) != gt.shape[1]:
        raise ValueError(f"fmt {fmt!r} must be a joint format with l_shoulder and r_hip and {gt.shape[1]} joints")
    ls, rh = names.index("l_shoulder"), names.index("r_hip")
    scored = _scored(pred, gt, mask)
    scored &= (scored[:, ls] & scored[:, rh])[:, None]
    if not scored.any():
        raise ValueError("PDJ has no joint to score: every pose lacks a scored l_shoulder and r_hip (masked or NaN)")
    torso = np.linalg.norm(gt[:, ls] - gt[:, rh], axis=1)
    flat = scored.any(1) & ~(torso > 0)
    if flat.any():
        raise ValueError(f"gt pose {int(np.argmax(flat))} has a torso diameter of 0 (l_shoulder on r_hip)")
    err = np.linalg.norm(np.where(scored[..., None], pred - gt, 0.0), axis=2)
    return np.stack([_percent(err <= t * torso[:, None], scored, 0) for t in thresholds])


def pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    head_sizes: np.ndarray,
    thresh: float = 0.5,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """PCKh (%, Andriluka et al. 2014, MPII): a joint is correct when its error is ``<=`` ``thresh`` x the
    head size.

    ``head_sizes`` ``(N,)`` pixels, finite and > 0 (MPII: 0.6 x the diagonal of the head box); ``mask``
    ``(N, J)`` bool selects the annotated (visible) joints, all by default; NaN ground-truth joints are
    left out too. Returns ``(per_joint (J,), total)`` over the scored joints; a joint never scored is NaN
    in ``per_joint``, and nothing scored at all is an error.
    """
    pred, gt = _pair(pred, gt, 2)
    head_sizes = np.asarray(head_sizes, np.float64)
    if head_sizes.shape != (len(gt),):
        raise ValueError(f"head_sizes must be ({len(gt)},), got {head_sizes.shape}")
    require_finite(head_sizes, "head_sizes", ("pose",))
    if (head_sizes <= 0).any():
        n = int(np.argmax(head_sizes <= 0))
        raise ValueError(f"head_sizes[{n}] is {head_sizes[n]}; expected a positive size in pixels")
    scored = _scored(pred, gt, mask)
    if not scored.any():
        raise ValueError("PCKh has no joint to score: every ground-truth joint is masked out or NaN")
    err = np.linalg.norm(np.where(scored[..., None], pred - gt, 0.0), axis=2)
    ok = err <= thresh * head_sizes[:, None]
    return _percent(ok, scored, 0), float(_percent(ok, scored, (0, 1)))


# ---------------------------------------------------------------------------------------------------------
# 3D pose


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean Per-Joint Position Error: mean Euclidean distance over poses and joints (units of the input).

    ``pred``, ``gt`` ``(N, J, D)``, finite.
    """
    pred, gt = _finite_poses(pred, gt)
    return float(np.linalg.norm(pred - gt, axis=2).mean())


def n_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE after scaling each predicted pose by the least-squares ``s = <pred, gt> / <pred, pred>``.

    Rhodin et al. 2018 (used by Honari et al. 2022). Inputs are expected root-centred (no translation is
    fitted), so ``n_mpjpe <= mpjpe`` always. ``(N, J, D)``, finite, ``J >= 2``.
    """
    pred, gt = _finite_poses(pred, gt, min_joints=2)
    s = (pred * gt).sum((1, 2)) / np.maximum((pred * pred).sum((1, 2)), 1e-12)
    return mpjpe(pred * s[:, None, None], gt)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Each ``(J, 3)`` predicted pose moved onto its ground truth by the best similarity transform.

    Translation (centroids), rotation without reflection (``scipy.spatial.transform.Rotation.align_vectors``,
    a proper rotation by construction) and the scale ``<gt_c, R pred_c> / |pred_c|^2`` that is optimal given
    that rotation (Umeyama 1991). ``(N, J, 3) -> (N, J, 3)``, finite, ``J >= 3`` (fewer joints leave the
    rotation undetermined).
    """
    pred, gt = _finite_poses(pred, gt, 3, min_joints=3)
    out = np.empty_like(pred)
    for n in range(len(pred)):
        mp, mg = pred[n].mean(0), gt[n].mean(0)
        p, g = pred[n] - mp, gt[n] - mg
        rot, _ = Rotation.align_vectors(g, p)
        rp = rot.apply(p)
        s = (g * rp).sum() / max((p * p).sum(), 1e-12)
        out[n] = s * rp + mg
    return out


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE after per-pose Procrustes alignment (:func:`procrustes_align`), as in Honari et al. 2022."""
    return mpjpe(procrustes_align(pred, gt), gt)


# ---------------------------------------------------------------------------------------------------------
# posture retrieval

FPR_GRID = np.arange(101) / 100  # exact k / 100, so a ROC step at FPR k / n_neg falls on the grid point


def posture_retrieval_auc(
    sim: np.ndarray, anchors: Sequence[int], pos_ids: Sequence[Sequence[int]], neg_ids: Sequence[Sequence[int]]
) -> dict[str, float | np.ndarray]:
    """The CliqueCNN posture-retrieval protocol (Bautista et al. 2016; Sümer et al., Milbich et al. 2017).

    ``sim`` ``(N, N)``: similarity between frame ids (larger = more alike). For each anchor, its positives
    and negatives are ranked by ``sim[anchor]`` and a ROC curve is drawn (``sklearn.metrics.roc_curve``;
    tied scores make one diagonal segment, so ties count half, as in ``roc_auc_score``). Returns
    ``mean_auc`` (mean of the per-anchor AUCs), ``per_anchor`` ``(A,)``, and the mean ROC on a grid:
    each anchor's ROC, a piecewise-linear function of the false-positive rate, is read with ``np.interp``
    at the 101 FPRs of :data:`FPR_GRID` and averaged over anchors; ``fpr`` is the grid and ``mean_tpr`` the
    mean ROC there (where a vertical step lies on a grid point: its top). ``auc_of_mean_roc`` is the
    trapezoid area of the grid-sampled mean ROC, each cell taking its left edge's value just right of that
    point and its right edge's value just left of it, so a step on a grid point is exact. The mean of
    curves has the mean of their areas, so ``auc_of_mean_roc`` differs from ``mean_auc`` by the grid's
    discretisation alone: by at most 0.005, and not at all when every anchor's number of negatives divides
    100. Tables state which AUC they show. Each anchor's similarities to its positives and negatives must
    be finite.
    """
    sim = np.asarray(sim, np.float64)
    if sim.ndim != 2:
        raise ValueError(f"sim must be an (N, N) similarity matrix, got shape {sim.shape}")
    if not (len(anchors) == len(pos_ids) == len(neg_ids)) or len(anchors) == 0:
        raise ValueError(
            f"anchors, pos_ids and neg_ids must be equally long and non-empty, got "
            f"{len(anchors)}, {len(pos_ids)}, {len(neg_ids)}"
        )
    per_anchor, tpr_top, tpr_bottom = [], [], []
    for a, pos, neg in zip(anchors, pos_ids, neg_ids, strict=True):
        pos, neg = np.asarray(pos, int), np.asarray(neg, int)
        if len(pos) == 0 or len(neg) == 0:
            raise ValueError(f"anchor {a} needs at least one positive and one negative")
        ids = np.r_[pos, neg]
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        s = sim[a, ids]
        if not np.isfinite(s).all():
            k = int(ids[np.argmax(~np.isfinite(s))])
            raise ValueError(f"sim[{a}, {k}] (anchor {a}, frame {k}) is {sim[a, k]}; expected finite similarities")
        fpr, tpr, _ = roc_curve(y, s)
        per_anchor.append(roc_auc_score(y, s))
        # at an x with several points (a vertical step) np.interp returns the last; read right to left too
        tpr_top.append(np.interp(FPR_GRID, fpr, tpr))
        tpr_bottom.append(np.interp(-FPR_GRID, -fpr[::-1], tpr[::-1]))
    mean_tpr, mean_bottom = np.mean(tpr_top, axis=0), np.mean(tpr_bottom, axis=0)
    return {
        "mean_auc": float(np.mean(per_anchor)),
        "auc_of_mean_roc": float(np.sum(np.diff(FPR_GRID) * (mean_tpr[:-1] + mean_bottom[1:]) / 2)),
        "per_anchor": np.array(per_anchor),
        "fpr": FPR_GRID.copy(),
        "mean_tpr": mean_tpr,
    }


def squared_distances(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``(n, d)``, ``(m, d)`` embeddings -> ``(n, m)`` squared Euclidean distances, clamped at 0."""
    if isinstance(x, torch.Tensor):
        return torch.cdist(x.double(), y.double()).square()
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)


def normalise_pose(joints: np.ndarray) -> np.ndarray:
    """Poses ``(..., J, D)`` translated to their joint centroid and scaled to unit RMS joint radius."""
    joints = np.asarray(joints, np.float64)
    c = joints - joints.mean(-2, keepdims=True)
    r = np.sqrt((c**2).sum(-1).mean(-1))[..., None, None]
    return c / np.maximum(r, 1e-12)


def pose_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kwak et al. 2016 pose distance: mean over joints of the Euclidean distance between normalised poses.

    ``a`` ``(Na, J, D)``, ``b`` ``(Nb, J, D)`` -> ``(Na, Nb)``, in percent of the RMS joint radius
    (:func:`normalise_pose`); our reading of "normalised pose vectors", so the relative-distance margin of
    10 is 10 % of the pose's size.
    """
    na, nb = normalise_pose(a), normalise_pose(b)
    return 100.0 * np.linalg.norm(na[:, None] - nb[None], axis=-1).mean(-1)


def pose_retrieval_metrics(
    sim: np.ndarray,
    query_poses: np.ndarray,
    db_poses: np.ndarray,
    ks: Sequence[int] = (1, 2, 5, 10, 20, 50),
    n_pose_neighbours: int = 50,
    margin: float = 10.0,
) -> dict[str, np.ndarray]:
    """Kwak et al. 2016 retrieval metrics (as Sümer et al. 2017, Fig. 4), at each K in ``ks``.

    ``sim`` ``(Nq, Ndb)`` ranks the database for each query (larger = retrieved first); the poses ``(N, J, D)``
    judge the retrievals by :func:`pose_distance`. Returns, per K: ``mean_pose_distance`` (mean distance of
    the K first retrievals, averaged over queries), ``hit_rate_nn`` (share of queries with at least one of
    the K first retrievals among its ``n_pose_neighbours`` nearest in pose space) and ``hit_rate_relative``
    (at least one within ``margin`` of the query's smallest pose distance to the database), in %.
    """
    sim = np.asarray(sim)
    if sim.shape != (len(query_poses), len(db_poses)):
        raise ValueError(f"sim must be ({len(query_poses)}, {len(db_poses)}), got {sim.shape}")
    if max(ks) > sim.shape[1] or n_pose_neighbours > sim.shape[1]:
        raise ValueError(f"K and n_pose_neighbours must be <= the database size {sim.shape[1]}")
    dist = pose_distance(query_poses, db_poses)
    ranked = np.argsort(-sim, axis=1, kind="stable")
    d_ranked = np.take_along_axis(dist, ranked, axis=1)
    pose_rank = np.argsort(np.argsort(dist, axis=1, kind="stable"), axis=1)  # rank of each item by pose
    in_nn = np.take_along_axis(pose_rank, ranked, axis=1) < n_pose_neighbours
    close = d_ranked <= dist.min(1, keepdims=True) + margin
    out = {"k": np.array(ks), "mean_pose_distance": [], "hit_rate_nn": [], "hit_rate_relative": []}
    for k in ks:
        out["mean_pose_distance"].append(d_ranked[:, :k].mean())
        out["hit_rate_nn"].append(100.0 * in_nn[:, :k].any(1).mean())
        out["hit_rate_relative"].append(100.0 * close[:, :k].any(1).mean())
    return {key: np.asarray(v) for key, v in out.items()}


# ---------------------------------------------------------------------------------------------------------
# recognition from scores


def _recognition_inputs(
    scores: np.ndarray, query_labels: np.ndarray, dict_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores, ql, dl = np.asarray(scores, np.float64), np.asarray(query_labels), np.asarray(dict_labels)
    if scores.shape != (len(ql), len(dl)) or scores.size == 0:
        raise ValueError(f"scores must be ({len(ql)}, {len(dl)}) for the given labels, non-empty, got {scores.shape}")
    require_finite(scores, "scores", ("query", "dictionary item"))
    return scores, ql, dl


def one_nn_accuracy(scores: np.ndarray, query_labels: np.ndarray, dict_labels: np.ndarray) -> float:
    """Share of queries whose best-scoring dictionary item (``scores`` ``(n_q, n_d)``, finite, larger =
    closer) has the query's label; on a tie the first such item. A query whose class the dictionary lacks
    counts as wrong."""
    scores, ql, dl = _recognition_inputs(scores, query_labels, dict_labels)
    return float((dl[scores.argmax(1)] == ql).mean())


def per_class_average_precision(
    scores: np.ndarray, query_labels: np.ndarray, dict_labels: np.ndarray
) -> dict[object, float]:
    """Average precision per query class (``sklearn.metrics.average_precision_score``).

    ``scores`` ``(n_q, n_d)``, finite, larger = closer. Each query's score for class ``c`` is its best score
    against the dictionary items of class ``c``; the queries are ranked by it, those labelled ``c`` being
    the relevant ones. Returns ``{class: AP}`` for every class among the queries (sorted; numpy scalars as
    Python ones); a query class with no dictionary item cannot be scored and maps to NaN, so it is reported,
    not dropped. The macro AP over the classes the dictionary has is ``np.nanmean(list(aps.values()))``;
    ``np.mean`` of the values is NaN whenever a query class is missing from the dictionary, on purpose.
    Dictionary classes no query has are not in the result (no relevant query: AP undefined).
    """
    scores, ql, dl = _recognition_inputs(scores, query_labels, dict_labels)
    return {
        c.item() if hasattr(c, "item") else c: (
            float(average_precision_score(ql == c, scores[:, dl == c].max(1))) if (dl == c).any() else np.nan
        )
        for c in np.unique(ql)
    }
