"""JHMDB (Jhuang et al. 2013): joint positions with the official splits, and the DD-Net npz files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lib.data.base import PoseSequences, dataset_error, dataset_folder, load_mat, load_npz


def load_jhmdb_split(root: str | Path | None = None, split: int = 1) -> tuple[list[str], list[str], np.ndarray]:
    """JHMDB official split ``split`` (1-3) from ``splits/<class>_test_split<k>.txt`` (``<clip>.avi 1|2``,
    1 = train, 2 = test) -> (clip names, class names per clip, split per clip 'train'/'test')."""
    if split not in (1, 2, 3):
        raise ValueError(f"JHMDB split must be 1, 2 or 3, got {split}")
    folder = dataset_folder("jhmdb", root) / "splits"
    files = sorted(folder.glob(f"*_test_split{split}.txt"))
    if not files:
        raise dataset_error("jhmdb", folder, f"no <class>_test_split{split}.txt files")
    names, classes, which = [], [], []
    seen: dict[str, tuple[Path, int, str]] = {}  # clip -> where it was first listed, and its side
    for f in files:
        cls = f.name[: -len(f"_test_split{split}.txt")]
        try:
            text = f.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise dataset_error("jhmdb", f, f"not UTF-8 text ({e}); expected lines '<clip>.avi 1|2'") from e
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("1", "2"):
                raise dataset_error("jhmdb", f, f"line {line_no}: expected '<clip>.avi 1|2', got {line!r}")
            name, side = parts[0].removesuffix(".avi"), "train" if parts[1] == "1" else "test"
            if name in seen:
                f0, line0, side0 = seen[name]
                raise dataset_error(
                    "jhmdb",
                    f,
                    f"line {line_no}: clip {name!r} ({side}) is already listed in {f0} line {line0} "
                    f"({side0}); each clip belongs to one class and one side of split {split}",
                )
            seen[name] = (f, line_no, side)
            names.append(name)
            classes.append(cls)
            which.append(side)
    return names, classes, np.array(which)


def load_jhmdb(root: str | Path | None = None, split: int = 1, missing: str = "error") -> PoseSequences:
    """JHMDB (Jhuang et al. 2013) 2D joints ``joint_positions/<class>/<clip>/joint_positions.mat``
    (``pos_img`` ``(2, 15, T)`` pixels) with the official split ``split``; format ``jhmdb15``.

    ``missing``: ``"error"`` (a clip of the split without its joint file is an error) or ``"skip"``.
    JHMDB marks no invisible joints (all visible).
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    folder = dataset_folder("jhmdb", root)
    names, classes, which = load_jhmdb_split(folder, split)
    class_names = tuple(sorted(set(classes)))
    poses, keep = [], []
    for k, (name, cls) in enumerate(zip(names, classes, strict=True)):
        f = folder / "joint_positions" / cls / name / "joint_positions.mat"
        if not f.is_file() and missing == "skip":
            continue
        pos = np.asarray(load_mat("jhmdb", f, ("pos_img",))["pos_img"], np.float32)
        if pos.ndim != 3 or pos.shape[:2] != (2, 15):
            raise dataset_error("jhmdb", f, f"pos_img must be (2, 15, T), got {pos.shape}")
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
    folder = dataset_folder("jhmdb_ddnet", root)
    poses, labels, which = [], [], []
    for part in ("train", "test"):
        f = folder / f"GT_{part}_{split}.npz"
        z = load_npz("jhmdb_ddnet", f, ("poses", "lengths", "labels"))
        p, lengths, lab = z["poses"], z["lengths"], z["labels"]
        if p.ndim != 3 or p.shape[1:] != (15, 2):
            raise dataset_error("jhmdb_ddnet", f, f"poses must be (sum T, 15, 2), got {p.shape}")
        if lengths.ndim != 1 or not lengths.size or lengths.dtype.kind not in "iu" or (lengths <= 0).any():
            smallest = lengths.min() if lengths.size else "none"
            raise dataset_error(
                "jhmdb_ddnet",
                f,
                f"lengths must be (N,) positive integers with N >= 1, got {lengths.dtype} "
                f"{lengths.shape}, smallest {smallest}",
            )
        if lengths.sum() != len(p):
            raise dataset_error("jhmdb_ddnet", f, f"lengths sum to {lengths.sum()}, but poses has {len(p)} frames")
        if lab.shape != lengths.shape:
            raise dataset_error("jhmdb_ddnet", f, f"{lab.shape} labels for {lengths.shape} lengths")
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
