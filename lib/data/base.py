"""What every real-dataset loader shares: the containers it returns, its error, and file helpers.

Each dataset family has its own module in :mod:`lib.data` (Penn Action, JHMDB, LSP/LSPET, MPII, FLIC,
Olympic Sports, Human3.6M). Every loader takes the dataset's folder (``<data_root>/<name>`` by default, see
:func:`lib.runtime.find_data_root`) and returns:

- :class:`PoseSequences` (Penn Action, JHMDB): like ``World.pose_sequences`` -- one ``(T, J, 2)`` float32
  pixel array per clip, in the dataset's joint format (a :data:`lib.skeleton.FORMATS` name), with
  visibility, class labels and the official split.
- :class:`PoseStills` (LSP, LSPET, MPII, FLIC): like ``World.lsp_stills`` -- joints ``(N, J, 2)`` pixels,
  visibility and the image paths (images are read on demand); :func:`crop_stills` cuts person crops.
- ``list[PostureLabels]`` (Olympic Sports, CliqueCNN labels): the posture-retrieval schema that
  :mod:`lib.evaluation.protocols` also builds from the synthetic world.
- Human3.6M and CMU: exp-map motion files ``(T, n_cols)`` (:func:`load_expmap`; joints via
  :mod:`lib.world.mocap`) and the 3D-joint npz.

A missing or malformed file raises :class:`DatasetError` naming the file, what was expected and where the
dataset is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from lib.images import crop_coordinates, square_crop
from lib.runtime import find_data_root
from lib.skeleton import FORMATS

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
    "cmu_mocap": "http://mocap.cs.cmu.edu (cgspeed BVH conversion); exp-map files: github.com/limaosen0/DMGNN "
    "data/cmu (Li et al. 2018 motion-prediction data)",
}


class DatasetError(ValueError):
    """A dataset file that is missing or not in the documented format."""


def dataset_error(name: str, path: Path, problem: str) -> DatasetError:
    """The error for dataset ``name``'s file ``path``: what is wrong and where the dataset is downloaded."""
    return DatasetError(f"{path}: {problem} (download {name}: {DOWNLOAD[name]})")


def dataset_folder(name: str, root: str | Path | None) -> Path:
    """The dataset's folder: ``root``, else ``<data_root>/<name>``; an error if it is not there."""
    path = Path(root) if root is not None else find_data_root() / name
    if not path.is_dir():
        raise dataset_error(name, path, "dataset folder not found")
    return path


def load_mat(name: str, path: Path, keys: tuple[str, ...]) -> dict:
    """A MATLAB v5 file holding the variables ``keys``, or a :class:`DatasetError` naming what is wrong."""
    if not path.is_file():
        raise dataset_error(name, path, "file not found")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several types for corrupt files
        raise dataset_error(name, path, f"not a readable MATLAB v5 file ({e})") from e
    missing = [k for k in keys if k not in mat]
    if missing:
        raise dataset_error(name, path, f"missing variables {missing}; expected {list(keys)}")
    return mat


def load_npz(name: str, path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of an npz file read without pickle, or a :class:`DatasetError` naming what is wrong
    (missing file or array, corrupt or truncated zip, pickled object array)."""
    if not path.is_file():
        raise dataset_error(name, path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise dataset_error(name, path, f"missing arrays {missing}; expected {list(keys)}")
            return {k: z[k] for k in keys}
    except DatasetError:
        raise
    except Exception as e:  # zipfile, zlib, numpy's header parser and pickle refusal raise several types
        raise dataset_error(name, path, f"not a readable npz file of arrays {list(keys)} without pickle ({e})") from e


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


@dataclass
class PostureLabels:
    """One class of a posture-retrieval benchmark, in the CliqueCNN label schema.

    ``anchors`` ``(A,)`` frame ids; ``pos_ids[a]``, ``neg_ids[a]`` int arrays of frame ids (about 10 each);
    ``pos_flipvals``/``neg_flipvals`` the matching 0/1 flags (1: compare with the horizontally flipped
    frame). Ids are 0-based indices into the class's frame list (``frame_paths`` for Olympic Sports; world
    frame indices for the synthetic benchmark).
    """

    category: str
    anchors: np.ndarray
    pos_ids: list[np.ndarray]
    neg_ids: list[np.ndarray]
    pos_flipvals: list[np.ndarray]
    neg_flipvals: list[np.ndarray]
    frame_paths: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.anchors)
        if not all(len(x) == n for x in (self.pos_ids, self.neg_ids, self.pos_flipvals, self.neg_flipvals)):
            raise ValueError(f"{self.category}: anchors, pos/neg ids and flipvals must all have {n} entries")

    def frame_ids(self) -> np.ndarray:
        """All ids the class's evaluation touches (anchors, positives, negatives), sorted, unique."""
        return np.unique(np.concatenate([self.anchors, *self.pos_ids, *self.neg_ids]).astype(np.int64))


def load_expmap(path: str | Path, n_cols: int, name: str = "h36m_expmap") -> np.ndarray:
    """A comma-separated exp-map motion file (Martinez et al. 2017 / Li et al. 2018 releases) ->
    ``(T, n_cols)`` float64 rows, checking the width; ``name`` is the dataset named in errors."""
    path = Path(path)
    if not path.is_file():
        raise dataset_error(name, path, "exp-map file not found")
    try:
        values = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as e:
        raise dataset_error(name, path, f"not comma-separated numbers ({e})") from e
    if values.shape[1] != n_cols:
        raise dataset_error(name, path, f"{values.shape[1]} columns per row, expected {n_cols}")
    return values


def mat_items(x) -> list:
    """A MATLAB struct array / cell / single struct loaded with ``squeeze_me`` -> list of elements."""
    if isinstance(x, np.ndarray):
        return list(x.ravel())
    return [x]


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
