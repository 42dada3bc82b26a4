"""Olympic Sports (Niebles et al. 2010) with the CliqueCNN posture labels and person boxes.

- :func:`load_olympic_labels` -- the CliqueCNN posture labels of each class.
- :func:`load_olympic_boxes` -- the person boxes (``.bb`` files).
- :func:`olympic_crops` -- square person crops of a class's labelled frames, read from ``frames/`` (the
  videos' frames are not part of the labels; a user who has them puts them there).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import cv2
import h5py
import numpy as np

from lib.data.base import PostureLabels, dataset_error, dataset_folder
from lib.images import square_crop


def load_olympic_labels(root: str | Path | None = None, categories: list[str] | None = None) -> list[PostureLabels]:
    """CliqueCNN posture labels of Olympic Sports: per class ``labels_hdf5_19.02.16/labels_<class>.hdf5``
    (anchors, pos_ids, neg_ids, pos_flipvals, neg_flipvals; 0-based ids) and
    ``image_pathes/imagePaths_<class>.txt`` (id -> frame path). ``categories`` default: all classes."""
    folder = dataset_folder("olympic_sports", root) / "cliquecnn_labels"
    label_dir = folder / "labels_hdf5_19.02.16"
    if categories is None:
        categories = sorted(p.stem.removeprefix("labels_") for p in label_dir.glob("labels_*.hdf5"))
        if not categories:
            raise dataset_error("olympic_sports", label_dir, "no labels_<class>.hdf5 files")
    out = []
    for cat in categories:
        f = label_dir / f"labels_{cat}.hdf5"
        paths_file = folder / "image_pathes" / f"imagePaths_{cat}.txt"
        if not f.is_file():
            raise dataset_error("olympic_sports", f, "file not found")
        if not paths_file.is_file():
            raise dataset_error("olympic_sports", paths_file, "file not found")
        try:
            with h5py.File(f, "r") as h:
                anchors = np.asarray(h["anchors"][()], np.int64)
                lists = {k: [np.asarray(x, np.int64) for x in h[k][()]] for k in
                         ("pos_ids", "neg_ids", "pos_flipvals", "neg_flipvals")}  # fmt: skip
        except (OSError, KeyError) as e:
            raise dataset_error(
                "olympic_sports", f, f"expected HDF5 datasets anchors, pos_ids, neg_ids, *_flipvals ({e})"
            ) from e
        frame_paths = [line.strip() for line in paths_file.read_text().splitlines() if line.strip()]
        lab = PostureLabels(cat, anchors, frame_paths=frame_paths, **lists)
        if lab.frame_ids().max() >= len(frame_paths):
            raise dataset_error(
                "olympic_sports", f, f"frame id {lab.frame_ids().max()} beyond the {len(frame_paths)} paths"
            )
        out.append(lab)
    return out


def load_olympic_boxes(root: str | Path | None = None) -> dict[str, np.ndarray]:
    """Person boxes from ``cliquecnn_labels/bboxes.tar.gz``: ``<class>/<video>`` -> ``(n, 5)`` float rows
    ``frame_index xmin ymin xmax ymax`` (the ``.bb`` files)."""
    f = dataset_folder("olympic_sports", root) / "cliquecnn_labels" / "bboxes.tar.gz"
    if not f.is_file():
        raise dataset_error("olympic_sports", f, "file not found")
    out = {}
    with tarfile.open(f) as tar:
        for m in tar.getmembers():
            if not m.isfile() or not m.name.endswith(".bb"):
                continue
            rows = np.loadtxt(tar.extractfile(m), ndmin=2)
            if rows.size and rows.shape[1] != 5:
                raise dataset_error("olympic_sports", f, f"{m.name}: expected 5 columns per line, got {rows.shape[1]}")
            key = "/".join(Path(m.name).with_suffix("").parts[-2:])
            out[key] = rows.reshape(-1, 5)
    return out


def olympic_crops(
    root: str | Path | None, labels: PostureLabels, boxes: dict[str, np.ndarray], size: int, margin: float = 1.2
) -> np.ndarray:
    """uint8 ``(n_paths, size, size, 3)`` person crops of ``labels``' frames: for each id the evaluation reads
    (:meth:`PostureLabels.frame_ids`; other rows stay black), the frame ``frames/<class>/<video>/I<k>.png``
    under the dataset folder, cropped square around its box (``margin`` x the longer side; the ``.bb`` row
    whose 1-based ``frame_index`` is ``k + 1``) and resized to ``size``. A missing frame or box is an error
    naming it."""
    if labels.frame_paths is None:
        raise ValueError(f"{labels.category}: the labels carry no frame paths (load them with load_olympic_labels)")
    folder = dataset_folder("olympic_sports", root) / "frames" / labels.category
    out = np.zeros((len(labels.frame_paths), size, size, 3), np.uint8)
    for i in labels.frame_ids():
        rel = Path(labels.frame_paths[i])
        video, k = rel.parent.name, int(rel.stem.lstrip("I"))
        key = f"{labels.category}/{video}"
        rows = boxes.get(key)
        row = None if rows is None else rows[rows[:, 0] == k + 1]
        if row is None or len(row) == 0:
            raise dataset_error("olympic_sports", folder / rel, f"no box for frame {k} of {key} in the .bb files")
        image = cv2.imread(str(folder / rel), cv2.IMREAD_COLOR)
        if image is None:
            raise dataset_error("olympic_sports", folder / rel, "frame not found or not an image")
        x0, y0, x1, y1 = row[0, 1:]
        window = np.array([(x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * margin])
        out[i] = square_crop(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), window, size)
    return out
