"""Loaders for the real datasets, in their official folder layouts, returning the synthetic world's structures.

Every loader takes the dataset's folder (``<data_root>/<name>`` by default, see
:func:`lib.runtime.find_data_root`) and returns:

- :class:`PoseSequences` (Penn Action, JHMDB): like ``World.pose_sequences`` -- one ``(T, J, 2)`` float32
  pixel array per clip, in the dataset's joint format (a :data:`lib.skeleton.FORMATS` name), with
  visibility, class labels and the official split.
- :class:`PoseStills` (LSP, LSPET, MPII, FLIC): like ``World.lsp_stills`` -- joints ``(N, J, 2)`` pixels,
  visibility and the image paths (images are read on demand).
- ``list[PostureLabels]`` (Olympic Sports, CliqueCNN labels): the schema of :mod:`lib.protocols`.
- Human3.6M: exp-map motion files ``(T, 99)`` (joints via :mod:`lib.mocap`) and the 3D-joint npz.

A missing or malformed file raises :class:`DatasetError` naming the file, what was expected and where the
dataset is downloaded.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import h5py
import numpy as np
import scipy.io

from lib.protocols import PostureLabels
from lib.runtime import find_data_root
from lib.skeleton import FORMATS
from lib.synth import crop_coordinates, square_crop

DOWNLOAD = {
    "penn_action": "http://dreamdragon.github.io/PennAction/ (Penn_Action.tar.gz)",
    "jhmdb": "http://jhmdb.is.tue.mpg.de/ (joint_positions.zip, splits.zip)",
    "jhmdb_ddnet": "https://github.com/fandulu/DD-Net (JHMDB GT_{train,test}_{1,2,3} data)",
    "lsp": "http://sam.johnson.io/research/lsp.html (lsp_dataset.zip)",
    "lspet": "http://sam.johnson.io/research/lspet.html (lspet_dataset.zip)",
    "mpii": "http://human-pose.mpi-inf.mpg.de/ (mpii_human_pose_v1_u12_2.zip, images)",
    "flic": "https://bensapp.github.io/flic-dataset.html (FLIC.zip)",
    "olympic_sports": "https://github.com/asanakoy/cliquecnn (olympic_sports_retrieval/data)",
    "h36m_expmap": "http://www.cs.stanford.edu/people/ashesh/h3.6m.zip (Martinez et al. 2017 exp-map files)",
    "h36m": "https://github.com/facebookresearch/VideoPose3D/blob/main/DATASETS.md (data_3d_h36m.npz)",
}


class DatasetError(ValueError):
    """A dataset file that is missing or not in the documented format."""


def _fail(name: str, path: Path, problem: str) -> DatasetError:
    return DatasetError(f"{path}: {problem} (download {name}: {DOWNLOAD[name]})")


def _folder(name: str, root: str | Path | None) -> Path:
    path = Path(root) if root is not None else find_data_root() / name
    if not path.is_dir():
        raise _fail(name, path, "dataset folder not found")
    return path


def _loadmat(name: str, path: Path, keys: tuple[str, ...]) -> dict:
    if not path.is_file():
        raise _fail(name, path, "file not found")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several types for corrupt files
        raise _fail(name, path, f"not a readable MATLAB v5 file ({e})") from e
    missing = [k for k in keys if k not in mat]
    if missing:
        raise _fail(name, path, f"missing variables {missing}; expected {list(keys)}")
    return mat


@dataclass
class PoseSequences:
    """2D pose clips: ``poses[i]`` ``(T_i, J, 2)`` float32 pixels and ``visible[i]`` ``(T_i, J)`` bool in
    joint format ``fmt``; ``labels`` ``(N,)`` int indexing ``class_names``; ``split`` ``(N,)`` 'train'/'test';
    ``names`` clip ids; ``boxes[i]`` ``(T_i, 4)`` x0, y0, x1, y1 when the dataset has them."""

    poses: list[np.ndarray]
    visible: list[np.ndarray]
    labels: np.ndarray
    class_names: tuple[str, ...]
    split: np.ndarray
    names: list[str]
    fmt: str
    boxes: list[np.ndarray] | None = None

    def subset(self, split: str) -> PoseSequences:
        """The clips of one split."""
        keep = np.flatnonzero(self.split == split)
        pick = [int(k) for k in keep]
        return PoseSequences(
            [self.poses[k] for k in pick],
            [self.visible[k] for k in pick],
            self.labels[keep],
            self.class_names,
            self.split[keep],
            [self.names[k] for k in pick],
            self.fmt,
            None if self.boxes is None else [self.boxes[k] for k in pick],
        )


@dataclass
class PoseStills:
    """Still images with 2D joints: ``joints`` ``(N, J, 2)`` pixels and ``visible`` ``(N, J)`` in format
    ``fmt`` (a :data:`lib.skeleton.FORMATS` name or, for MPII/FLIC, the dataset's own names in
    ``joint_names``); ``image_paths``; ``split`` ``(N,)``; ``extra`` per-image arrays (MPII head sizes)."""

    image_paths: list[Path]
    joints: np.ndarray
    visible: np.ndarray
    fmt: str
    split: np.ndarray
    joint_names: tuple[str, ...] = ()
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.joint_names:
            self.joint_names = FORMATS[self.fmt]
        if len(self.joint_names) != self.joints.shape[1]:
            raise ValueError(f"{len(self.joint_names)} joint names for {self.joints.shape[1]} joints")


# ---------------------------------------------------------------------------------------------------------
# Penn Action


def load_penn_action(root: str | Path | None = None) -> PoseSequences:
    """Penn Action (Zhang et al. 2013): ``labels/NNNN.mat`` -> 2326 clips, 13 joints (``penn13``), 15 classes.

    Each file holds x, y ``(T, 13)``, visibility ``(T, 13)``, bbox ``(T, 4)``, action, train (1 / -1).
    Quirk: 1154.mat and 1865.mat have one bbox row fewer than frames; the last box is repeated.
    """
    folder = _folder("penn_action", root) / "labels"
    files = sorted(folder.glob("*.mat"))
    if not files:
        raise _fail("penn_action", folder, "no labels/*.mat files")
    poses, vis, boxes, actions, split = [], [], [], [], []
    for f in files:
        m = _loadmat("penn_action", f, ("x", "y", "visibility", "bbox", "action", "train"))
        x, y = np.asarray(m["x"], np.float32), np.asarray(m["y"], np.float32)
        if x.ndim != 2 or x.shape[1] != 13 or y.shape != x.shape or m["visibility"].shape != x.shape:
            raise _fail("penn_action", f, f"x, y, visibility must be (T, 13), got {x.shape}, {y.shape}")
        box = np.asarray(m["bbox"], np.float32).reshape(-1, 4)
        if len(box) == len(x) - 1:  # the documented quirk of two clips
            box = np.concatenate([box, box[-1:]])
        if len(box) != len(x):
            raise _fail("penn_action", f, f"bbox has {len(box)} rows for {len(x)} frames")
        poses.append(np.stack([x, y], -1))
        vis.append(np.asarray(m["visibility"]) > 0)
        boxes.append(box)
        actions.append(str(np.squeeze(m["action"])))
        split.append("train" if int(np.squeeze(m["train"])) == 1 else "test")
    class_names = tuple(sorted(set(actions)))
    labels = np.array([class_names.index(a) for a in actions])
    return PoseSequences(poses, vis, labels, class_names, np.array(split), [f.stem for f in files], "penn13", boxes)


# ---------------------------------------------------------------------------------------------------------
# JHMDB


def load_jhmdb_split(root: str | Path | None = None, split: int = 1) -> tuple[list[str], list[str], np.ndarray]:
    """JHMDB official split ``split`` (1-3) from ``splits/<class>_test_split<k>.txt`` (``<clip>.avi 1|2``,
    1 = train, 2 = test) -> (clip names, class names per clip, split per clip 'train'/'test')."""
    if split not in (1, 2, 3):
        raise ValueError(f"JHMDB split must be 1, 2 or 3, got {split}")
    folder = _folder("jhmdb", root) / "splits"
    files = sorted(folder.glob(f"*_test_split{split}.txt"))
    if not files:
        raise _fail("jhmdb", folder, f"no <class>_test_split{split}.txt files")
    names, classes, which = [], [], []
    for f in files:
        cls = f.name[: -len(f"_test_split{split}.txt")]
        for line_no, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("1", "2"):
                raise _fail("jhmdb", f, f"line {line_no}: expected '<clip>.avi 1|2', got {line!r}")
            names.append(parts[0].removesuffix(".avi"))
            classes.append(cls)
            which.append("train" if parts[1] == "1" else "test")
    return names, classes, np.array(which)


def load_jhmdb(root: str | Path | None = None, split: int = 1, missing: str = "error") -> PoseSequences:
    """JHMDB (Jhuang et al. 2013) 2D joints ``joint_positions/<class>/<clip>/joint_positions.mat``
    (``pos_img`` ``(2, 15, T)`` pixels) with the official split ``split``; format ``jhmdb15``.

    ``missing``: ``"error"`` (a clip of the split without its joint file is an error) or ``"skip"``.
    JHMDB marks no invisible joints (all visible).
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    folder = _folder("jhmdb", root)
    names, classes, which = load_jhmdb_split(folder, split)
    class_names = tuple(sorted(set(classes)))
    poses, keep = [], []
    for k, (name, cls) in enumerate(zip(names, classes, strict=True)):
        f = folder / "joint_positions" / cls / name / "joint_positions.mat"
        if not f.is_file() and missing == "skip":
            continue
        pos = np.asarray(_loadmat("jhmdb", f, ("pos_img",))["pos_img"], np.float32)
        if pos.ndim != 3 or pos.shape[:2] != (2, 15):
            raise _fail("jhmdb", f, f"pos_img must be (2, 15, T), got {pos.shape}")
        poses.append(pos.transpose(2, 1, 0).copy())
        keep.append(k)
    return PoseSequences(
        poses,
        [np.ones(p.shape[:2], bool) for p in poses],
        np.array([class_names.index(classes[k]) for k in keep], dtype=np.int64),
        class_names,
        which[keep],
        [names[k] for k in keep],
        "jhmdb15",
    )


def load_jhmdb_ddnet(root: str | Path | None = None, split: int = 1) -> PoseSequences:
    """The DD-Net JHMDB files ``GT_{train,test}_<split>.npz`` (no pickle): ``poses`` ``(sum T, 15, 2)``
    (``pos_world``, normalised), ``lengths`` ``(N,)``, ``labels`` ``(N,)`` str; format ``jhmdb15``."""
    folder = _folder("jhmdb_ddnet", root)
    poses, labels, which = [], [], []
    for part in ("train", "test"):
        f = folder / f"GT_{part}_{split}.npz"
        if not f.is_file():
            raise _fail("jhmdb_ddnet", f, "file not found")
        try:
            with np.load(f, allow_pickle=False) as z:
                p, lengths, lab = z["poses"], z["lengths"], z["labels"]
        except (KeyError, ValueError, OSError) as e:
            raise _fail("jhmdb_ddnet", f, f"expected arrays poses, lengths, labels without pickle ({e})") from e
        if p.ndim != 3 or p.shape[1:] != (15, 2) or lengths.sum() != len(p) or len(lab) != len(lengths):
            raise _fail("jhmdb_ddnet", f, f"poses {p.shape} do not match lengths (sum {lengths.sum()})")
        poses += np.split(p.astype(np.float32), np.cumsum(lengths)[:-1])
        labels += [str(x) for x in lab]
        which += [part] * len(lengths)
    class_names = tuple(sorted(set(labels)))
    return PoseSequences(
        poses,
        [np.ones(p.shape[:2], bool) for p in poses],
        np.array([class_names.index(x) for x in labels]),
        class_names,
        np.array(which),
        [f"{which[k]}_{k}" for k in range(len(poses))],
        "jhmdb15",
    )


# ---------------------------------------------------------------------------------------------------------
# LSP, LSPET


def _load_lsp_like(name: str, root: str | Path | None, layout: str, digits: int) -> PoseStills:
    folder = _folder(name, root)
    f = folder / "joints.mat"
    j = np.asarray(_loadmat(name, f, ("joints",))["joints"], np.float64)
    if layout == "3jn":  # LSP: (3, 14, N)
        if j.ndim != 3 or j.shape[:2] != (3, 14):
            raise _fail(name, f, f"joints must be (3, 14, N) (x, y, visibility), got {j.shape}")
        j = j.transpose(2, 1, 0)
    else:  # LSPET: (14, 3, N)
        if j.ndim != 3 or j.shape[:2] != (14, 3):
            raise _fail(name, f, f"joints must be (14, 3, N) (x, y, visibility), got {j.shape}")
        j = j.transpose(2, 0, 1)
    n = len(j)
    paths = [folder / "images" / f"im{k + 1:0{digits}d}.jpg" for k in range(n)]
    for p in (paths[0], paths[-1]):
        if not p.is_file():
            raise _fail(name, p, f"image not found (expected images/im{1:0{digits}d}.jpg ... for {n} joint sets)")
    return PoseStills(paths, j[..., :2].astype(np.float32), j[..., 2] > 0, "lsp14", np.full(n, "train"))


def load_lsp(root: str | Path | None = None) -> PoseStills:
    """LSP (Johnson & Everingham 2010): ``joints.mat`` ``(3, 14, 2000)`` + ``images/im0001.jpg``...;
    the first 1000 images are the training set, the last 1000 the test set. Format ``lsp14``; the third
    row is read as visibility (non-zero = visible), as the dataset's README documents."""
    st = _load_lsp_like("lsp", root, "3jn", 4)
    st.split = np.where(np.arange(len(st.joints)) < len(st.joints) // 2, "train", "test")
    return st


def crop_stills(stills: PoseStills, size: int, margin: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """Person-centred square crops of every still: the window around its visible joints (all joints when
    fewer than two are visible), ``margin`` x its longer side, resized to ``size`` px -- the same crops as
    ``World.person_crops``. Returns crops ``(N, size, size, 3)`` uint8 RGB and joints in crop pixels
    ``(N, J, 2)`` float32."""
    windows = np.empty((len(stills.joints), 3))
    crops = np.empty((len(stills.joints), size, size, 3), np.uint8)
    for k, (xy, vis, path) in enumerate(zip(stills.joints, stills.visible, stills.image_paths, strict=True)):
        pts = xy[vis] if vis.sum() >= 2 else xy
        lo, hi = pts.min(0), pts.max(0)
        windows[k] = [*(lo + hi) / 2, max(float((hi - lo).max()) * margin, 8.0)]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"cannot read image {path}; expected a JPEG/PNG file")
        crops[k] = square_crop(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), windows[k], size)
    return crops, crop_coordinates(stills.joints, windows, size)


def load_lspet(root: str | Path | None = None) -> PoseStills:
    """LSP Extended (Johnson & Everingham 2011): ``joints.mat`` ``(14, 3, N)`` + ``images/im00001.jpg``...
    (all training images). Format ``lsp14``."""
    return _load_lsp_like("lspet", root, "j3n", 5)


# ---------------------------------------------------------------------------------------------------------
# Olympic Sports (CliqueCNN labels)


def load_olympic_labels(root: str | Path | None = None, categories: list[str] | None = None) -> list[PostureLabels]:
    """CliqueCNN posture labels of Olympic Sports: per class ``labels_hdf5_19.02.16/labels_<class>.hdf5``
    (anchors, pos_ids, neg_ids, pos_flipvals, neg_flipvals; 0-based ids) and
    ``image_pathes/imagePaths_<class>.txt`` (id -> frame path). ``categories`` default: all classes."""
    folder = _folder("olympic_sports", root) / "cliquecnn_labels"
    label_dir = folder / "labels_hdf5_19.02.16"
    if categories is None:
        categories = sorted(p.stem.removeprefix("labels_") for p in label_dir.glob("labels_*.hdf5"))
        if not categories:
            raise _fail("olympic_sports", label_dir, "no labels_<class>.hdf5 files")
    out = []
    for cat in categories:
        f = label_dir / f"labels_{cat}.hdf5"
        paths_file = folder / "image_pathes" / f"imagePaths_{cat}.txt"
        if not f.is_file():
            raise _fail("olympic_sports", f, "file not found")
        if not paths_file.is_file():
            raise _fail("olympic_sports", paths_file, "file not found")
        try:
            with h5py.File(f, "r") as h:
                anchors = np.asarray(h["anchors"][()], np.int64)
                lists = {k: [np.asarray(x, np.int64) for x in h[k][()]] for k in
                         ("pos_ids", "neg_ids", "pos_flipvals", "neg_flipvals")}  # fmt: skip
        except (OSError, KeyError) as e:
            raise _fail(
                "olympic_sports", f, f"expected HDF5 datasets anchors, pos_ids, neg_ids, *_flipvals ({e})"
            ) from e
        frame_paths = [line.strip() for line in paths_file.read_text().splitlines() if line.strip()]
        lab = PostureLabels(cat, anchors, frame_paths=frame_paths, **lists)
        if lab.frame_ids().max() >= len(frame_paths):
            raise _fail("olympic_sports", f, f"frame id {lab.frame_ids().max()} beyond the {len(frame_paths)} paths")
        out.append(lab)
    return out


def load_olympic_boxes(root: str | Path | None = None) -> dict[str, np.ndarray]:
    """Person boxes from ``cliquecnn_labels/bboxes.tar.gz``: ``<class>/<video>`` -> ``(n, 5)`` float rows
    ``frame_index xmin ymin xmax ymax`` (the ``.bb`` files)."""
    f = _folder("olympic_sports", root) / "cliquecnn_labels" / "bboxes.tar.gz"
    if not f.is_file():
        raise _fail("olympic_sports", f, "file not found")
    out = {}
    with tarfile.open(f) as tar:
        for m in tar.getmembers():
            if not m.isfile() or not m.name.endswith(".bb"):
                continue
            rows = np.loadtxt(tar.extractfile(m), ndmin=2)
            if rows.size and rows.shape[1] != 5:
                raise _fail("olympic_sports", f, f"{m.name}: expected 5 columns per line, got {rows.shape[1]}")
            key = "/".join(Path(m.name).with_suffix("").parts[-2:])
            out[key] = rows.reshape(-1, 5)
    return out


# ---------------------------------------------------------------------------------------------------------
# Human3.6M


def load_h36m_expmap(root: str | Path | None = None) -> dict[tuple[str, str], np.ndarray]:
    """Human3.6M exp-map motion files ``dataset/S<k>/<action>_<n>.txt`` (Martinez et al. 2017 release, 50 Hz)
    -> ``{(subject, "<action>_<n>"): (T, 99)}`` raw rows. Joints: ``lib.mocap.expmap_joints(rows, H36M_EXPMAP)``."""
    from lib.mocap import H36M_EXPMAP, load_expmap

    folder = _folder("h36m_expmap", root) / "dataset"
    files = sorted(folder.glob("S*/*.txt"))
    if not files:
        raise _fail("h36m_expmap", folder, "no S<k>/<action>_<n>.txt files")
    return {(f.parent.name, f.stem): load_expmap(f, H36M_EXPMAP) for f in files}


def load_h36m_3d(path: str | Path) -> dict[tuple[str, str], np.ndarray]:
    """Human3.6M 3D joints in the flat, pickle-free variant of VideoPose3D's ``data_3d_h36m.npz``.

    VideoPose3D's own file stores a nested dict as a pickled object array (``positions_3d``), which this
    course never unpickles. Supported instead: an npz whose keys are ``<subject>/<action>`` and whose values
    are ``(T, 32, 3)`` float arrays in metres (world frame, 32 Human3.6M joints), e.g. written with
    ``np.savez(path, **{f"{s}/{a}": arr ...})``. Returns ``{(subject, action): array}``.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail("h36m", path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {tuple(k.split("/", 1)): z[k] for k in z.files}
    except ValueError as e:
        raise _fail("h36m", path, "it needs pickle (VideoPose3D's nested-dict layout); convert it to "
                    "'<subject>/<action>' -> (T, 32, 3) arrays") from e  # fmt: skip
    for key, arr in data.items():
        if len(key) != 2 or arr.ndim != 3 or arr.shape[1:] != (32, 3):
            raise _fail("h36m", path, f"entry {'/'.join(key)}: expected '<subject>/<action>' -> (T, 32, 3)")
    return data


# ---------------------------------------------------------------------------------------------------------
# MPII, FLIC (written against the documented formats; tested on fixtures)

MPII_JOINTS: tuple[str, ...] = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)  # fmt: skip
# FLIC's 29 coords; the 11 annotated ones (the others are NaN) in this order
FLIC_COORDS = (0, 1, 2, 3, 4, 5, 6, 9, 12, 13, 16)
FLIC_JOINTS: tuple[str, ...] = (
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist", "l_hip", "r_hip", "l_eye", "r_eye",
    "nose",
)  # fmt: skip


def _items(x) -> list:
    """A MATLAB struct array / cell / single struct loaded with ``squeeze_me`` -> list of elements."""
    if isinstance(x, np.ndarray):
        return list(x.ravel())
    return [x]


def load_mpii(root: str | Path | None = None, annotation: str = "mpii_human_pose_v1_u12_1.mat") -> PoseStills:
    """MPII Human Pose (Andriluka et al. 2014) from the official ``RELEASE`` struct: one row per annotated
    person (``annolist(i).annorect(r).annopoints.point`` with ``id`` 0-15, ``x``, ``y``, ``is_visible``).

    Joints ``(N, 16, 2)`` in MPII order (:data:`MPII_JOINTS`); ``visible`` marks annotated joints;
    ``extra``: ``head_size`` (0.6 x the head box diagonal, for PCKh), ``is_visible`` (the occlusion
    flag), ``image_index``. ``split`` from ``img_train`` ('train' / 'test'); images under ``images/``.
    """
    folder = _folder("mpii", root)
    f = folder / annotation
    if not f.is_file():
        raise _fail("mpii", f, "file not found")
    try:
        rel = scipy.io.loadmat(f, struct_as_record=False, squeeze_me=True)["RELEASE"]
        annolist, img_train = _items(rel.annolist), np.atleast_1d(rel.img_train)
    except (KeyError, AttributeError, ValueError) as e:
        raise _fail("mpii", f, f"expected a struct RELEASE with annolist and img_train ({e})") from e
    paths, joints, vis, occ, head, img_idx, split = [], [], [], [], [], [], []
    for i, ann in enumerate(annolist):
        for rect in _items(getattr(ann, "annorect", [])):
            pts = getattr(rect, "annopoints", None)
            if pts is None or isinstance(pts, np.ndarray) or not hasattr(pts, "point"):
                continue  # a person without joint annotations
            j, v, o = np.zeros((16, 2), np.float32), np.zeros(16, bool), np.zeros(16, bool)
            for pt in _items(pts.point):
                k = int(pt.id)
                j[k], v[k] = (float(pt.x), float(pt.y)), True
                flag = np.asarray(getattr(pt, "is_visible", 1)).ravel()
                o[k] = float(flag[0]) != 0 if flag.size else True
            paths.append(folder / "images" / str(ann.image.name))
            joints.append(j)
            vis.append(v)
            occ.append(o)
            head.append(0.6 * float(np.hypot(rect.x2 - rect.x1, rect.y2 - rect.y1)))
            img_idx.append(i)
            split.append("train" if int(img_train[i]) == 1 else "test")
    if not joints:
        raise _fail("mpii", f, "no annotated person (annorect.annopoints.point) found")
    extra = {"head_size": np.array(head), "is_visible": np.array(occ), "image_index": np.array(img_idx)}
    return PoseStills(paths, np.array(joints), np.array(vis), "mpii16", np.array(split), MPII_JOINTS, extra)


def load_flic(root: str | Path | None = None) -> PoseStills:
    """FLIC (Sapp & Taskar 2013) from ``examples.mat``: struct array ``examples`` with ``coords`` ``(2, 29)``
    (NaN where not annotated), ``filepath``, ``istrain``/``istest``, ``torsobox``; images under ``images/``.

    Joints ``(N, 11, 2)``: the 11 annotated points (:data:`FLIC_JOINTS`); ``extra['torsobox']`` ``(N, 4)``.
    PDJ: ``lib.metrics.pdj(pred, gt, thresholds, fmt=FLIC_JOINTS)``.
    """
    folder = _folder("flic", root)
    f = folder / "examples.mat"
    if not f.is_file():
        raise _fail("flic", f, "file not found")
    try:
        ex = _items(scipy.io.loadmat(f, struct_as_record=False, squeeze_me=True)["examples"])
        coords = np.stack([np.asarray(e.coords, np.float64).reshape(2, 29) for e in ex])
        paths = [folder / "images" / str(e.filepath) for e in ex]
        split = np.array(["train" if int(e.istrain) else "test" if int(e.istest) else "none" for e in ex])
        torso = np.stack([np.asarray(e.torsobox, np.float64).reshape(4) for e in ex])
    except (KeyError, AttributeError, ValueError) as e:
        raise _fail(
            "flic", f, f"expected a struct array 'examples' with coords (2, 29), filepath, istrain ({e})"
        ) from e
    joints = coords.transpose(0, 2, 1)[:, list(FLIC_COORDS)]
    visible = np.isfinite(joints).all(-1)
    return PoseStills(paths, np.nan_to_num(joints).astype(np.float32), visible, "flic11", split, FLIC_JOINTS,
                      {"torsobox": torso})  # fmt: skip
