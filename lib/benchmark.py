"""Every method on the same protocols (notebook 08): the registry of methods and the harness that scores them.

A :class:`Method` is a name, a kind (``"frame"``: embeds person crops; ``"sequence"``: embeds 2D pose
sequences, for recognition only), a ``fit`` that trains it (through the method's one-call ``lib`` function,
at the profile's size) on the common :class:`Setting`, and an ``embed``. :data:`REGISTRY` lists them;
adding a method is one entry (``register``). :func:`evaluate` runs every protocol of
:mod:`lib.evaluation` on one method and returns its per-item scores (the same items for every method), so
that every cell gets a bootstrap interval and :func:`paired_ranks` can rank methods by paired bootstrap.

``source="recorded"`` reads the features a paper notebook saved (``reports/<notebook>/features.npz``, keyed by
world frame id) instead of training; a protocol whose frames the file lacks is left out for that method,
with the reason (:class:`NotRecorded`).

This module sits above :mod:`lib.methods` (the layering keeps ``lib.evaluation`` free of methods).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from lib.data.base import crop_stills
from lib.data.lsp import load_lspet
from lib.evaluation.baselines import pose_oracle_features, raw_pixel_features
from lib.evaluation.metrics import pcp_sticks, pose_distance, pose_retrieval_metrics, posture_retrieval_auc
from lib.evaluation.probes import per_pose_errors, root_relative, train_pose_probe
from lib.evaluation.protocols import make_posture_benchmark, nearest_neighbours
from lib.evaluation.uncertainty import LearnCheck, bootstrap_ci, learned, paired_difference, verdict
from lib.images import hog_features, images_to_tensor
from lib.methods import hog_lda, reconciliation, shuffle_learn, skip_pose
from lib.methods import pose_from_action as pfa
from lib.methods import spatiotemporal as st
from lib.methods import temporal_representation as tr
from lib.methods.stn import windows_to_box
from lib.nets.resnet import resnet
from lib.nets.vgg import VGGS, embed_images
from lib.runtime import REPO_ROOT, Profile
from lib.skeleton import to_format
from lib.world.flow_cache import FlowCache, world_flows
from lib.world.synth import World, make_world

FRAME, SEQUENCE = "frame", "sequence"
KINDS = (FRAME, SEQUENCE)
KS = (1, 5, 10)  # Kwak et al. retrieval depths
FRACTIONS = (0.01, 0.1, 1.0)  # labelled share of the 3D probe's training frames
DTW_MODES = ("similarity", "cost")

# the sizes of each profile: every method trains at its profile's size, every protocol runs on the same items
SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        crop=32, width=8, anchors=20, probe_epochs=8, probe_width=256, sl_steps=100, sl_batch=16,
        pfa_steps=100, pfa_low=20, pfa_batch=8, pfa_width=8, rec_epochs=2, rec_steps=40, rec_triplets=16,
        tr_steps=60, skip_epochs=10, chunk=2, lspet_images=300, st_steps=120, st_batch=24, st_crop=64, st_width=0.125,
        st_fc=(256, 128), st_rounds=1,
    ),
    "full": dict(
        crop=64, width=32, anchors=40, probe_epochs=20, probe_width=None, sl_steps=1500, sl_batch=128,
        pfa_steps=800, pfa_low=200, pfa_batch=64, pfa_width=32, rec_epochs=4, rec_steps=150, rec_triplets=128,
        tr_steps=300, skip_epochs=40, chunk=2, lspet_images=2000, st_steps=1200, st_batch=48, st_crop=96,
        st_width=0.25, st_fc=(1024, 512), st_rounds=2,
    ),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# the common setting


@dataclass
class Frames:
    """Person crops to embed: ``images`` uint8 ``(N, s, s, 3)``, their ``joints`` ``(N, 14, 2)`` (LSP-14, crop
    pixels; the oracle's input) and ``ids`` ``(N,)`` world frame indices (None for real images)."""

    images: np.ndarray
    joints: np.ndarray
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Setting:
    """One world, one held-out split, one seed and one set of sizes for every method.

    ``frames``: every world frame as a person crop; ``train`` / ``held``: frame indices of the training and
    held-out (val + test) subjects and motions; ``bench``: the posture benchmark (held-out frames);
    ``queries`` / ``database``: the LSP-style stills (held-out test / train) of zero-shot PCP and Kwak et al.
    retrieval; ``poses`` / ``masks``: each sequence's normalised 2D pose (Penn-13) and keypoint mask, for the
    sequence methods; ``lspet``: real crops when the data root has LSPET, else None.
    """

    world: World
    profile: Profile
    seed: int
    sizes: dict[str, Any]
    frames: Frames
    train: np.ndarray
    held: np.ndarray
    bench: list
    queries: np.ndarray
    database: np.ndarray
    poses: list[np.ndarray]
    masks: list[np.ndarray]
    lspet: Frames | None = None
    lspet_note: str = ""

    @property
    def device(self) -> torch.device:
        return self.profile.device

    @property
    def train_sequences(self) -> np.ndarray:
        return np.unique(self.world.seq[self.train])

    @property
    def held_sequences(self) -> np.ndarray:
        return np.unique(self.world.seq[self.held])


def make_setting(
    profile: Profile, seed: int, data_root: str | Path | None = None, world: World | None = None, **sizes: Any
) -> Setting:
    """The common setting of ``profile`` (sizes :data:`SIZES`, overridden by ``sizes``) for ``seed``.

    LSPET is read from ``<data_root>/lspet`` when it is there (its first ``lspet_images`` images).
    """
    unknown = sorted(set(sizes) - set(SIZES[profile.name]))
    if unknown:
        raise ValueError(f"unknown size(s) {unknown}; expected some of {sorted(SIZES[profile.name])}")
    size = {**SIZES[profile.name], **sizes}
    world = make_world(profile.name, seed) if world is None else world
    crops, joints = world.person_crops(size["crop"])
    frames = Frames(crops, to_format(joints, "lsp14"), np.arange(len(crops)))
    train = world.split_indices("train")
    held = np.sort(np.concatenate([world.split_indices("val"), world.split_indices("test")]))
    bench = make_posture_benchmark(world, ("val", "test"), anchors_per_class=size["anchors"], seed=seed)
    poses2d = world.pose_sequences(dim=2, fmt="penn13")
    depth = [p[..., 2] for p in world.pose_sequences(dim=3, fmt="penn13")]
    norm = [
        skip_pose.normalize_sequence(p, skip_pose.keypoint_mask(p, world.frames.shape[1:3], depth=z))
        for p, z in zip(poses2d, depth, strict=True)
    ]
    setting = Setting(
        world=world, profile=profile, seed=seed, sizes=size, frames=frames, train=train, held=held, bench=bench,
        queries=world.lsp_stills("test").index, database=world.lsp_stills("train").index,
        poses=[n[0] for n in norm], masks=[n[1] for n in norm],
    )  # fmt: skip
    setting.lspet, setting.lspet_note = _load_lspet(data_root, size)
    return setting


def _load_lspet(data_root: str | Path | None, size: dict[str, Any]) -> tuple[Frames | None, str]:
    from lib.runtime import find_data_root

    try:
        root = find_data_root(data_root)
    except FileNotFoundError as e:
        return None, f"no data root ({e}); the LSPET transfer column is left out"
    if not (root / "lspet" / "joints.mat").exists():
        return None, f"LSPET not found under {root} (expected lspet/joints.mat); the LSPET transfer column is left out"
    stills = load_lspet(root / "lspet")
    full = np.flatnonzero(stills.visible.all(1))  # fully visible: every joint scored
    keep = full[: size["lspet_images"]]
    sub = dataclasses.replace(
        stills, image_paths=[stills.image_paths[i] for i in keep], joints=stills.joints[keep],
        visible=stills.visible[keep], split=stills.split[keep], extra={k: v[keep] for k, v in stills.extra.items()},
    )  # fmt: skip
    crops, joints = crop_stills(sub, size["crop"])
    note = f"LSPET: {len(keep)} fully visible images (first of {len(full)} of {len(stills.joints)}), never trained on"
    return Frames(crops, joints), note


def resized(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(N, s, s, 3)`` -> ``(N, size, size, 3)`` (area interpolation; the same array when already ``size``)."""
    if images.shape[1] == size:
        return images
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


# ---------------------------------------------------------------------------------------------------------
# the registry


@dataclass
class Fitted:
    """A method ready to embed: its ``state`` (model, or :class:`RecordedFeatures`), the wall seconds its
    training took, its learn check (None for untrained baselines and recorded features)."""

    state: Any
    train_s: float = 0.0
    check: LearnCheck | None = None


@dataclass(frozen=True)
class Recorded:
    """Where a paper notebook saves this method's features: ``reports/<notebook>/features.npz`` with
    ``(feature array, frame-id array)`` name pairs (ids are world frame indices). ``checks``: ``(array, World
    attribute)`` pairs that must agree on the first pair's frames (a file from another world is refused)."""

    notebook: str
    arrays: tuple[tuple[str, str], ...]
    checks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Method:
    """One row of the benchmark.

    ``fit(setting) -> Fitted`` trains it (or builds an untrained baseline); ``embed(state, x)`` maps
    :class:`Frames` to ``(N, D)`` features (kind ``"frame"``) or ``(poses, masks)`` lists of normalised 2D
    pose sequences to per-frame features ``[(T_s, D)]`` (kind ``"sequence"``). ``trained``: whether ``fit``
    trains (then it prints and returns a learn check). ``recorded``: where ``source="recorded"`` finds it.
    """

    name: str
    kind: str
    fit: Callable[[Setting], Fitted]
    embed: Callable[[Any, Any], Any]
    paper: str = ""
    trained: bool = False
    recorded: Recorded | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")


REGISTRY: dict[str, Method] = {}


def register(method: Method, registry: dict[str, Method] = REGISTRY) -> Method:
    """Add ``method`` to ``registry`` (a name may be registered once)."""
    if method.name in registry:
        raise ValueError(f"a method named {method.name!r} is already registered")
    registry[method.name] = method
    return method


def _untrained(build: Callable[[Setting], Any]) -> Callable[[Setting], Fitted]:
    return lambda s: Fitted(build(s))


def _posture_check(
    name: str, s: Setting, losses: Sequence[float], init: Any, model: Any, embed: Callable[[Any, Frames], np.ndarray]
) -> LearnCheck:
    """Learn check on the held-out posture benchmark: per-anchor AUC of ``init`` vs ``model``."""
    before = posture_items(lambda ids: embed(init, subset(s.frames, ids)), s.bench)
    after = posture_items(lambda ids: embed(model, subset(s.frames, ids)), s.bench)
    return learned(name, losses, before, after, metric="posture AUC", seed=s.seed)


def subset(frames: Frames, ids: np.ndarray) -> Frames:
    """The frames with world ids ``ids`` (rows of a setting's ``frames``)."""
    return Frames(frames.images[ids], frames.joints[ids], None if frames.ids is None else frames.ids[ids])


def _vgg(layer: str) -> Callable[[VGGS, Frames], np.ndarray]:
    """Embed with a VGG at its own input size (crops resized to it) from ``layer``."""
    return lambda net, x: embed_images(net, resized(x.images, net.image_size), layer=layer)


def _random_vgg(variant: str) -> Callable[[Setting], Fitted]:
    def build(s: Setting) -> VGGS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            return VGGS(3, s.sizes["crop"], width=s.sizes["width"], variant=variant).to(s.device).eval()

    return _untrained(build)


def _random_resnet(s: Setting) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        return resnet(18, s.sizes["width"]).to(s.device).eval()


@torch.no_grad()
def _resnet_embed(net: torch.nn.Module, x: Frames) -> np.ndarray:
    """Global-average-pooled last stage of a ResNet, in batches of 256."""
    device = next(net.parameters()).device
    out = [net.pooled(images_to_tensor(x.images[i : i + 256], device)).cpu() for i in range(0, len(x), 256)]
    return torch.cat(out).numpy()


def _fit_hog_lda(s: Setting) -> Fitted:
    c = s.sizes["crop"]
    window = (c // 8 - 1,) * 2
    stat_frames = s.world.frames[s.train][::8]  # every 8th training frame; consecutive frames are near copies
    mean0, sigma = hog_lda.background_statistics(stat_frames, (c, 3 * c // 2, 2 * c), window)
    return Fitted(hog_lda.stationary_hog_lda(mean0, sigma, window, ridge=0.1))


def _fit_shuffle_learn(s: Setting) -> Fitted:
    z = s.sizes
    cfg = shuffle_learn.ShuffleLearnConfig(
        steps=z["sl_steps"], batch=z["sl_batch"], image_size=z["crop"], width=z["width"]
    )
    t0 = time.perf_counter()
    net, hist = shuffle_learn.train_shuffle_learn(s.frames.images[s.train], s.world.seq[s.train], cfg, s.seed, s.device)
    dt = time.perf_counter() - t0
    init = shuffle_learn.new_order_classifier(cfg, 3, s.seed).backbone.to(s.device).eval()
    return Fitted(net, dt, _posture_check("Shuffle & Learn", s, hist["loss"], init, net, _vgg("embedding")))


def _pretext_flows(s: Setting) -> FlowCache:
    """TV-L1 flows of notebook 03's pretext sequences (smoke: 2 train, 1 val per activity; the same cache as
    notebooks 03 and 04), restricted to the training sequences."""
    w = s.world
    per = (2, 1) if s.profile.smoke else (None, 3)
    tr_seqs = pfa.pretext_sequences(w, "train", per[0], s.seed)
    va_seqs = pfa.pretext_sequences(w, "val", per[1], s.seed)
    flows = world_flows(w, np.concatenate([tr_seqs, va_seqs]), size=None if s.profile.smoke else 64,
                        workers=2 if s.profile.smoke else None)  # fmt: skip
    rows = flows.rows(np.concatenate([w.sequence_frames(int(q)) for q in tr_seqs]))
    return dataclasses.replace(flows, flows=flows.flows[rows], index=flows.index[rows], sequences=tr_seqs)


def _fit_pose_from_action(s: Setting) -> Fitted:
    z, w = s.sizes, s.world
    flows = _pretext_flows(s)
    idx = flows.index
    crop = int(round(0.875 * w.image_size))
    cfg = pfa.PoseFromActionConfig(
        steps=z["pfa_steps"], low_lr_steps=z["pfa_low"], batch=z["pfa_batch"], crop=crop, width=z["pfa_width"],
        variant="vgg_s", optimizer="adam", lr=1e-3, low_lr=1e-4,
    )  # fmt: skip
    t0 = time.perf_counter()
    net, hist = pfa.train_pose_from_action(w.frames[idx], flows.flows, w.seq[idx], cfg, s.seed, s.device)
    dt = time.perf_counter() - t0
    init = pfa.init_pose_from_action(cfg, s.seed, s.device).appearance.eval()
    check = _posture_check("Pose from Action", s, hist["loss"], init, net.appearance, _vgg("fc6"))
    return Fitted(net.appearance, dt, check)


def _fit_spatiotemporal(s: Setting) -> Fitted:
    """Notebook 04's "S&T + rep" (joint tasks, curriculum, mined repetitions) at notebook 04's profile sizes
    and learning rates, on the pretext sequences' crops."""
    z = s.sizes
    cfg = st.SpatioTemporalConfig(
        tasks="TS", steps=z["st_steps"], batch=z["st_batch"], image_size=z["st_crop"], width=z["st_width"],
        fc=z["st_fc"], lr_fc=3e-3, lr_conv=1e-3,
    )  # fmt: skip
    t0 = time.perf_counter()
    net, hist = st.train_with_repetitions(s.world, cfg, z["st_rounds"], s.seed, s.device, flows=_pretext_flows(s))
    dt = time.perf_counter() - t0
    init = st.new_spatiotemporal_net(cfg, s.seed).to(s.device).eval()
    return Fitted(net, dt, _posture_check("Sümer et al.", s, hist["loss"], init, net, _pool5))


def _pool5(net: st.SpatioTemporalNet, x: Frames) -> np.ndarray:
    """AlexNet pool5 at the net's own input size (crops resized to it)."""
    return st.embed_pool5(net, resized(x.images, net.backbone.image_size))


def _fit_reconciliation(s: Setting) -> Fitted:
    z = s.sizes
    start = _fit_hog_lda(s).state  # epoch 0 matches with HOG-LDA, as the paper
    cfg = reconciliation.ReconciliationConfig(
        epochs=z["rec_epochs"], steps_per_epoch=z["rec_steps"], triplets_per_step=z["rec_triplets"], pairs_per_step=4,
        augment=0.5, image_size=z["crop"], width=z["width"],
    )  # fmt: skip
    crops = s.frames.images[s.train]
    t0 = time.perf_counter()
    net, hist = reconciliation.train_reconciliation(
        crops, s.world.seq[s.train], start.transform(crops), cfg, s.seed, s.device
    )
    dt = time.perf_counter() - t0
    init = reconciliation.new_network(cfg, 3, s.seed).to(s.device).eval()
    return Fitted(net, dt, _posture_check("Milbich et al.", s, hist["loss"], init, net, _vgg("embedding")))


def _tr_config(s: Setting) -> tr.TemporalRepConfig:
    sizes = dict(tr.PROFILE_SIZES[s.profile.name], steps=s.sizes["tr_steps"], crop_size=s.sizes["crop"])
    return tr.variant("Ours", crop="gt", **sizes)


def _fit_temporal_rep(s: Setting) -> Fitted:
    """Notebook 07's "Ours (GT crops)": every protocol embeds person crops, so the ground-truth window replaces
    the STN (static-camera training sequences: re-synthesis needs a background)."""
    w = s.world
    seqs = [int(q) for q in s.train_sequences if not w.camera_moving[q]]
    data = tr.video_frames(w, seqs)
    cfg = _tr_config(s)
    t0 = time.perf_counter()
    model, hist = tr.train_temporal_rep(data, cfg, s.seed, s.device)
    dt = time.perf_counter() - t0
    init = tr.build_model(cfg, s.seed, s.device).eval()
    return Fitted(model, dt, _posture_check("Honari et al.", s, hist["loss"], init, model, _tr_embed))


def _tr_embed(model: tr.TemporalRepModel, x: Frames) -> np.ndarray:
    """The time-variant code of person crops: the window is the whole crop."""
    n, size = len(x), x.images.shape[1]
    windows = windows_to_box(np.tile([[size / 2, size / 2, size]], (n, 1)), size)
    return tr.encode(model, x.images, windows)["tv"]


# sequence methods (recognition only): per-frame features of normalised 2D pose sequences


def _seq_data(s: Setting, seqs: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [s.poses[int(q)] for q in seqs], [s.masks[int(q)] for q in seqs]


def _fit_skip(kind: str, label: str) -> Callable[[Setting], Fitted]:
    def fit(s: Setting) -> Fitted:
        poses, masks = _seq_data(s, s.train_sequences)
        chunk = s.sizes["chunk"]
        data = skip_pose.shared_triplets(poses, masks, chunk, s.seed)
        torch.manual_seed(s.seed)
        model = (skip_pose.SkipPoseAE if kind == "ae" else skip_pose.SkipPose)(poses[0].shape[1], chunk).to(s.device)
        before = skip_pose.triplet_losses(model, data.val)
        t0 = time.perf_counter()
        hist = skip_pose.train_skip_pose(
            model, data.train, data.val, s.sizes["skip_epochs"], seed=s.seed, device=s.device
        )
        dt = time.perf_counter() - t0
        after = skip_pose.triplet_losses(model, data.val)
        check = learned(label, hist.train, before, after, False, "val loss/triplet", s.seed)
        return Fitted(model, dt, check)

    return fit


def _fit_pca(s: Setting) -> Fitted:
    """PCA is fitted on the training sequences' windows at embedding time (``skip_pose.pca_features``)."""
    poses, masks = _seq_data(s, s.train_sequences)
    return Fitted((skip_pose.window_features(poses, masks, s.sizes["chunk"]), s.sizes["chunk"]))


def _pca_embed(state: tuple[list[np.ndarray], int], pm: tuple) -> list[np.ndarray]:
    fit_on, chunk = state
    return skip_pose.pca_features(fit_on, [skip_pose.window_features(*pm, chunk)])[0]


for _m in (
    Method("raw pixels", FRAME, _untrained(lambda s: None), lambda _, x: raw_pixel_features(x.images), "baseline"),
    Method("HOG", FRAME, _untrained(lambda s: None), lambda _, x: hog_features(x.images), "baseline"),
    Method("HOG-LDA", FRAME, _fit_hog_lda, lambda m, x: m.transform(x.images), "Hariharan et al. 2012"),
    Method("random CNN (VGG-S)", FRAME, _random_vgg("vgg_s"), _vgg("pool5"), "baseline"),
    Method("random CNN (VGG-M)", FRAME, _random_vgg("vgg_m"), _vgg("pool5"), "baseline"),
    Method("random CNN (ResNet18)", FRAME, _untrained(_random_resnet), _resnet_embed, "baseline"),
    Method("Shuffle & Learn", FRAME, _fit_shuffle_learn, _vgg("embedding"), "Misra et al. 2016",
           trained=True),
    Method("Pose from Action (fc6)", FRAME, _fit_pose_from_action, _vgg("fc6"), "Purushwalkam & Gupta 2016",
           trained=True, recorded=Recorded("03_pose_from_action", (("fc6_frames", "frames"),
           ("fc6_query_stills", "query_stills"), ("fc6_database_stills", "database_stills")))),
    Method("Sümer et al. (pool5)", FRAME, _fit_spatiotemporal, _pool5, "Sümer et al. 2017", trained=True,
           recorded=Recorded("04_spatiotemporal_relations", (("SandT_plus_rep", "index"),))),
    Method("Milbich et al.", FRAME, _fit_reconciliation, _vgg("embedding"), "Milbich et al. 2017", trained=True,
           recorded=Recorded("05_posture_reconciliation", (("embedding", "frames"),))),
    Method("Honari et al. (TV)", FRAME, _fit_temporal_rep, _tr_embed, "Honari et al. 2022", trained=True,
           recorded=Recorded("07_temporal_representation", (("tv", "frame"),), (("subject", "subject"),))),
    Method("ground-truth pose (oracle)", FRAME, _untrained(lambda s: None), lambda _, x: pose_oracle_features(x.joints),
           "upper bound"),
    Method("raw poses", SEQUENCE, _untrained(lambda s: s.sizes["chunk"]),
           lambda chunk, pm: skip_pose.window_features(*pm, chunk), "Shirakawa & Kozakaya 2019 (baseline)"),
    Method("PCA", SEQUENCE, _fit_pca, _pca_embed, "Shirakawa & Kozakaya 2019 (baseline)"),
    Method("AE", SEQUENCE, _fit_skip("ae", "AE"), lambda m, pm: skip_pose.embed_sequences(m, *pm),
           "Shirakawa & Kozakaya 2019 (baseline)", trained=True),
    Method("Skip-Pose Vectors", SEQUENCE, _fit_skip("skip", "Skip-Pose Vectors"),
           lambda m, pm: skip_pose.embed_sequences(m, *pm), "Shirakawa & Kozakaya 2019", trained=True),
):  # fmt: skip
    register(_m)


# ---------------------------------------------------------------------------------------------------------
# recorded features (source="recorded")


class NotRecorded(LookupError):
    """A method's recorded features are missing, or lack frames a protocol needs."""


@dataclass
class RecordedFeatures:
    """Features a notebook saved, by world frame id: ``table`` ``(M, D)`` float32, ``ids`` ``(M,)`` sorted."""

    name: str
    path: Path
    table: np.ndarray
    ids: np.ndarray

    def __call__(self, ids: np.ndarray | None) -> np.ndarray:
        if ids is None:
            raise NotRecorded(f"{self.name}: {self.path} holds world frames only, not real images")
        ids = np.asarray(ids)
        pos = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
        missing = self.ids[pos] != ids
        if missing.any():
            raise NotRecorded(f"{self.name}: {self.path} lacks {int(missing.sum())} of the {len(ids)} frames needed")
        return self.table[pos]


def load_recorded_features(
    method: Method, world: World, reports: str | Path = REPO_ROOT / "reports"
) -> RecordedFeatures:
    """The features ``method.recorded`` names, from ``<reports>/<notebook>/features.npz`` (``allow_pickle=False``).

    Raises :class:`NotRecorded` naming the method and the file when it has no recording or the file is
    absent, and ``ValueError`` when the file's arrays are malformed or name frames the world does not have.
    """
    rec = method.recorded
    if rec is None:
        raise NotRecorded(f"{method.name}: no notebook records its features")
    path = Path(reports) / rec.notebook / "features.npz"
    if not path.exists():
        raise NotRecorded(f"{method.name}: {path} is missing (run notebook {rec.notebook} first)")
    tables, ids = [], []
    with np.load(path, allow_pickle=False) as f:
        for feat_key, id_key in rec.arrays:
            if feat_key not in f or id_key not in f:
                raise ValueError(f"{path}: expected arrays {feat_key!r} and {id_key!r}, found {sorted(f.files)}")
            t, i = np.asarray(f[feat_key], np.float32), np.asarray(f[id_key], np.int64)
            if t.ndim != 2 or i.shape != (len(t),):
                raise ValueError(f"{path}: {feat_key} {t.shape} must be (N, D) with {id_key} (N,), got {i.shape}")
            if len(i) and (i.min() < 0 or i.max() >= len(world.frames)):
                raise ValueError(f"{path}: {id_key} reaches {i.max()} but this world has {len(world.frames)} frames")
            tables.append(t)
            ids.append(i)
        for key, attr in rec.checks:
            ours = np.asarray(getattr(world, attr))[ids[0]]
            if key not in f or not np.array_equal(np.asarray(f[key]), ours):
                raise ValueError(f"{path}: {key!r} differs from this world's {attr}: recorded on another world")
    table, ids_all = np.concatenate(tables), np.concatenate(ids)
    ids_u, first = np.unique(ids_all, return_index=True)
    return RecordedFeatures(method.name, path, table[first], ids_u)


def fit_methods(
    methods: Sequence[Method], setting: Setting, source: str = "train", reports: str | Path = REPO_ROOT / "reports"
) -> tuple[dict[str, Fitted], dict[str, str]]:
    """Fit every method (``source="train"``), or read the trained ones' recorded features (``"recorded"``;
    untrained baselines are always built). Returns the fitted methods and, by name, why the others are missing."""
    if source not in ("train", "recorded"):
        raise ValueError(f"source must be 'train' or 'recorded', got {source!r}")
    fitted, missing = {}, {}
    for m in methods:
        if source == "recorded" and m.trained:
            try:
                fitted[m.name] = Fitted(load_recorded_features(m, setting.world, reports))
            except NotRecorded as e:
                missing[m.name] = str(e)
            continue
        fitted[m.name] = m.fit(setting)
    return fitted, missing


# ---------------------------------------------------------------------------------------------------------
# the protocols, per item


@dataclass(frozen=True)
class Column:
    """One protocol's number: ``name``, whether higher is better, its unit and its items."""

    name: str
    higher_is_better: bool
    unit: str
    items: str


COLUMNS: tuple[Column, ...] = (
    Column("posture AUC", True, "", "anchors"),
    Column("posture AUC (other-sequence negatives)", True, "", "anchors"),
    *(Column(f"Kwak hit@{k}", True, "%", "query stills") for k in KS),
    *(Column(f"Kwak pose distance@{k}", False, "% of pose radius", "query stills") for k in KS),
    Column("zero-shot PCP", True, "%", "query stills"),
    *(Column(f"probe N-MPJPE {f:.0%}", False, "mm", "held-out sequences") for f in FRACTIONS),
    *(Column(f"DTW 1-NN ({m})", True, "%", "held-out sequences") for m in DTW_MODES),
    Column("LSPET pose distance@1", False, "% of pose radius", "LSPET images"),
)
COLUMN = {c.name: c for c in COLUMNS}
FRAME_ONLY = {c.name for c in COLUMNS if not c.name.startswith("DTW")}


def _unit(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def posture_items(
    features: Callable[[np.ndarray], np.ndarray], bench: Sequence, seq: np.ndarray | None = None
) -> np.ndarray:
    """Per-anchor posture AUCs (cosine similarity; :func:`lib.evaluation.metrics.posture_retrieval_auc`) of
    ``features(ids) -> (len(ids), D)`` on ``bench``, classes in order.

    With ``seq`` (the world's sequence id of each frame) only negatives from *other* sequences than the
    anchor's are kept (positives already are), and anchors left without a negative are dropped: the
    same items for every method, since the benchmark alone decides them.
    """
    ids = np.unique(np.concatenate([lab.frame_ids() for lab in bench]))
    f = _unit(features(ids))
    out = []
    for lab in bench:
        anchors, pos, neg = list(lab.anchors), list(lab.pos_ids), list(lab.neg_ids)
        if seq is not None:
            neg = [q[seq[q] != seq[a]] for a, q in zip(anchors, neg, strict=True)]
            keep = [k for k, q in enumerate(neg) if len(q)]
            anchors, pos, neg = [anchors[k] for k in keep], [pos[k] for k in keep], [neg[k] for k in keep]
        if not anchors:
            continue
        rows = np.searchsorted(ids, anchors)
        sim = f[rows] @ f.T
        res = posture_retrieval_auc(
            sim, np.arange(len(rows)), [np.searchsorted(ids, p) for p in pos], [np.searchsorted(ids, q) for q in neg]
        )
        out.append(res["per_anchor"])
    return np.concatenate(out)


def retrieval_items(
    fq: np.ndarray, fdb: np.ndarray, q_joints: np.ndarray, db_joints: np.ndarray
) -> dict[str, np.ndarray]:
    """Per query: Kwak et al.'s hit rate (among the 50 nearest poses, %) and mean pose distance of the
    first K retrievals (:func:`lib.evaluation.metrics.pose_retrieval_metrics` on each query alone, so the
    items average to its numbers), and zero-shot strict PCP (%) of the transferred joints."""
    sim = _unit(fq) @ _unit(fdb).T
    per = [pose_retrieval_metrics(sim[i : i + 1], q_joints[i : i + 1], db_joints, ks=KS) for i in range(len(fq))]
    out = {}
    for j, k in enumerate(KS):
        out[f"Kwak hit@{k}"] = np.array([p["hit_rate_nn"][j] for p in per])
        out[f"Kwak pose distance@{k}"] = np.array([p["mean_pose_distance"][j] for p in per])
    nn = nearest_neighbours(fq, fdb)
    out["zero-shot PCP"] = 100.0 * pcp_sticks(db_joints[nn], q_joints).mean(1)
    return out


def probe_items(
    f_train: np.ndarray,
    y_train: np.ndarray,
    f_held: np.ndarray,
    y_held: np.ndarray,
    held_seq: np.ndarray,
    s: Setting,
) -> dict[str, np.ndarray]:
    """Frozen-feature 3D pose: the MLP probe (:func:`lib.evaluation.probes.train_pose_probe`) trained on each
    share of :data:`FRACTIONS` of the training frames; items: each held-out sequence's mean N-MPJPE (mm)."""
    out = {}
    _, inverse = np.unique(held_seq, return_inverse=True)
    for frac in FRACTIONS:
        probe = train_pose_probe(
            f_train, y_train, "mlp", frac, s.sizes["probe_epochs"], width=s.sizes["probe_width"], seed=s.seed,
            device=s.device,
        )  # fmt: skip
        err = per_pose_errors(probe.predict(f_held) * 1000.0, y_held, ("n_mpjpe",))["n_mpjpe"]
        out[f"probe N-MPJPE {frac:.0%}"] = np.bincount(inverse, err) / np.bincount(inverse)
    return out


def recognition_items(
    q_feats: list, q_labels: np.ndarray, d_feats: list, d_labels: np.ndarray
) -> dict[str, np.ndarray]:
    """DTW 1-NN over per-frame features (:func:`lib.methods.skip_pose.recognise`, cosine maps) in both DTW modes;
    items: each query sequence's 0 / 100 correctness."""
    return {
        f"DTW 1-NN ({m})": 100.0 * skip_pose.recognise(q_feats, q_labels, d_feats, d_labels, m)["correct"]
        for m in DTW_MODES
    }


def lspet_items(f: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Per LSPET image: the pose distance (:func:`lib.evaluation.metrics.pose_distance`) to its nearest other
    image by feature cosine similarity."""
    sim = _unit(f) @ _unit(f).T
    np.fill_diagonal(sim, -np.inf)
    nn = sim.argmax(1)
    return np.array([pose_distance(joints[i : i + 1], joints[j : j + 1])[0, 0] for i, j in enumerate(nn)])


def features_of(method: Method, fitted: Fitted, x: Frames) -> np.ndarray:
    """``(N, D)`` float32 features of frames ``x``: the recorded rows of their world ids, else ``method.embed``."""
    if isinstance(fitted.state, RecordedFeatures):
        return fitted.state(x.ids)
    return np.asarray(method.embed(fitted.state, x), np.float32)


@dataclass
class Scores:
    """One method's per-item scores by column, why a column is absent, and its cost."""

    method: str
    kind: str
    items: dict[str, np.ndarray] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    train_s: float | None = None
    images_per_s: float | None = None


def evaluate(method: Method, fitted: Fitted, s: Setting) -> Scores:
    """Every protocol of :data:`COLUMNS` on one method (the same items for every method)."""
    w = s.world
    out = Scores(method.name, method.kind, train_s=fitted.train_s if method.trained else None)
    labels = np.array(w.activity_names)[w.seq_activity]
    q_seqs, d_seqs = s.held_sequences, s.train_sequences
    if method.kind == SEQUENCE:
        q = method.embed(fitted.state, _seq_data(s, q_seqs))
        d = method.embed(fitted.state, _seq_data(s, d_seqs))
        out.items |= recognition_items(q, labels[q_seqs], d, labels[d_seqs])
        out.absent |= {c: "a pose-sequence method: recognition only" for c in FRAME_ONLY}
        return out
    if isinstance(fitted.state, RecordedFeatures):
        feats = fitted.state
    else:
        t0 = time.perf_counter()
        table = features_of(method, fitted, s.frames)
        out.images_per_s = len(table) / max(time.perf_counter() - t0, 1e-9)

        def feats(ids: np.ndarray | None) -> np.ndarray:
            return table[ids]

    def attempt(columns: Sequence[str], fn: Callable[[], dict[str, np.ndarray]]) -> None:
        try:
            out.items |= fn()
        except NotRecorded as e:
            out.absent |= {c: str(e) for c in columns}

    posture = [c.name for c in COLUMNS if c.name.startswith("posture")]
    attempt(
        posture, lambda: {posture[0]: posture_items(feats, s.bench), posture[1]: posture_items(feats, s.bench, w.seq)}
    )
    retrieval = [c.name for c in COLUMNS if c.name.startswith(("Kwak", "zero-shot"))]
    j = s.frames.joints
    attempt(retrieval, lambda: retrieval_items(feats(s.queries), feats(s.database), j[s.queries], j[s.database]))
    y_tr, y_held = root_relative(w.joints3d[s.train]), root_relative(w.joints3d[s.held])
    attempt([c.name for c in COLUMNS if c.name.startswith("probe")],
            lambda: probe_items(feats(s.train), y_tr, feats(s.held), y_held, w.seq[s.held], s))  # fmt: skip

    def per_seq(seqs: np.ndarray) -> list[np.ndarray]:
        return [feats(w.sequence_frames(int(q))) for q in seqs]

    dtw = [c.name for c in COLUMNS if c.name.startswith("DTW")]
    attempt(dtw, lambda: recognition_items(per_seq(q_seqs), labels[q_seqs], per_seq(d_seqs), labels[d_seqs]))
    lspet = "LSPET pose distance@1"
    if s.lspet is None:
        out.absent[lspet] = s.lspet_note
    elif isinstance(feats, RecordedFeatures):
        out.absent[lspet] = f"{method.name}: recorded features hold world frames only"
    else:
        out.items[lspet] = lspet_items(features_of(method, fitted, s.lspet), s.lspet.joints)
    return out


# ---------------------------------------------------------------------------------------------------------
# intervals, ranks, the leaderboard


def paired_ranks(items: Mapping[str, np.ndarray], higher_is_better: bool = True, seed: int = 0) -> dict[str, int]:
    """Rank of each method on one column by paired bootstrap: 1 + the number of methods that beat it on the
    same items with a 95% interval of the paired difference (:func:`lib.evaluation.uncertainty.paired_difference`)
    excluding 0. Methods no other method beats share rank 1: ties stay ties."""
    names = list(items)
    sign = 1.0 if higher_is_better else -1.0
    beats = dict.fromkeys(names, 0)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            d = paired_difference(sign * np.asarray(items[a]), sign * np.asarray(items[b]), seed)
            if d.low > 0:
                beats[b] += 1
            elif d.high < 0:
                beats[a] += 1
    return {n: 1 + beats[n] for n in names}


def leaderboard(scores: Sequence[Scores], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per column: ``{"estimates": {method: Estimate}, "ranks": {method: rank}, "absent": {method: reason}}``
    (bootstrap interval on every cell; ranks by :func:`paired_ranks` among the methods that have the column)."""
    out = {}
    for col in COLUMNS:
        have = {sc.method: sc.items[col.name] for sc in scores if col.name in sc.items}
        sizes = {len(v) for v in have.values()}
        if len(sizes) > 1:
            raise ValueError(f"{col.name}: methods were scored on different items ({sorted(sizes)} items)")
        out[col.name] = {
            "estimates": {m: bootstrap_ci(v, seed=seed, name=f"{m}: {col.name}") for m, v in have.items()},
            "ranks": paired_ranks(have, col.higher_is_better, seed) if have else {},
            "absent": {sc.method: sc.absent.get(col.name, "") for sc in scores if col.name not in sc.items},
        }
    return out


# ---------------------------------------------------------------------------------------------------------
# each paper's headline ordering, checked in the common setting


@dataclass(frozen=True)
class Claim:
    """``ours`` beats ``theirs`` on ``column`` (a paper's headline ordering); ``paper``: its number(s)."""

    claim: str
    paper: str
    ours: str
    theirs: str
    column: str


CLAIMS: list[Claim] = [
    Claim(
        "Pose from Action fc6 encodes posture better than a random CNN",
        "FLIC strict PCP after fine-tuning above random initialisation (Purushwalkam & Gupta 2016)",
        "Pose from Action (fc6)",
        "random CNN (VGG-S)",
        "posture AUC",
    ),
    Claim(
        "Sümer et al. beat Shuffle & Learn on posture retrieval",
        "Olympic Sports AUC 0.701 (S&T+rep) vs 0.646 (Shuffle & Learn; Table 2)",
        "Sümer et al. (pool5)",
        "Shuffle & Learn",
        "posture AUC",
    ),
    Claim(
        "Milbich et al. beat Shuffle & Learn on posture retrieval",
        "Olympic Sports AUC 0.83 vs 0.63",
        "Milbich et al.",
        "Shuffle & Learn",
        "posture AUC",
    ),
    Claim(
        "Milbich et al. beat their HOG-LDA start on posture retrieval",
        "Olympic Sports AUC 0.83 vs 0.62",
        "Milbich et al.",
        "HOG-LDA",
        "posture AUC",
    ),
    Claim(
        "Milbich et al.: zero-shot pose by nearest neighbour beats HOG-LDA",
        "LSP zero-shot PCP 43.0 (upper bound 69.2)",
        "Milbich et al.",
        "HOG-LDA",
        "zero-shot PCP",
    ),
    Claim(
        "Honari et al.'s time-variant code beats an untrained ResNet18 for the 3D probe (all labels)",
        "H36M N-MPJPE 95.4 mm (full model, all labels)",
        "Honari et al. (TV)",
        "random CNN (ResNet18)",
        "probe N-MPJPE 100%",
    ),
    Claim(
        "Skip-Pose Vectors beat PCA in DTW recognition",
        "JHMDB 59.1 vs 55.6 (%)",
        "Skip-Pose Vectors",
        "PCA",
        "DTW 1-NN (similarity)",
    ),
    Claim(
        "Skip-Pose Vectors beat the AE in DTW recognition",
        "JHMDB 59.1 vs 58.7 (%)",
        "Skip-Pose Vectors",
        "AE",
        "DTW 1-NN (similarity)",
    ),
]


def check_claims(
    claims: Sequence[Claim], scores: Sequence[Scores], fitted: Mapping[str, Fitted], seed: int = 0
) -> list[dict[str, Any]]:
    """Claims rows (:func:`lib.runtime.write_claims` schema): ``ours`` is the paired difference ``ours - theirs``
    on the column's items, signed so that positive favours the claim; the verdict is ``inconclusive`` when a
    compared trained method did not learn, ``not reproducible here`` when a method or the column is absent."""
    by = {sc.method: sc for sc in scores}
    rows = []
    for c in claims:
        row = {"claim": c.claim, "paper": c.paper, "dataset": f"synthetic world, {c.column}"}
        absent = [m for m in (c.ours, c.theirs) if m not in by or c.column not in by[m].items]
        if absent:
            why = "; ".join(by[m].absent.get(c.column, "") if m in by else f"{m} is not in this run" for m in absent)
            rows.append(row | {"ours": None, "verdict": "not reproducible here", "reason": why})
            continue
        sign = 1.0 if COLUMN[c.column].higher_is_better else -1.0
        diff = paired_difference(sign * by[c.ours].items[c.column], sign * by[c.theirs].items[c.column], seed)
        checks = [fitted[m].check for m in (c.ours, c.theirs) if m in fitted and fitted[m].check is not None]
        v, reason = verdict(diff, checks)
        rows.append(row | {"ours": diff, "verdict": v, "reason": reason})
    return rows
