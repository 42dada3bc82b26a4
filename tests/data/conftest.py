"""Fixtures for the dataset loaders' tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def real_dataset() -> Callable[[str], Path]:
    """``real_dataset(name)`` -> ``$DATA_ROOT/<name>`` (default: the repository's ``data/``); the test is
    skipped with the reason when that folder is absent."""

    def find(name: str) -> Path:
        root = Path(os.environ.get("DATA_ROOT", Path(__file__).resolve().parents[2] / "data")) / name
        if not root.is_dir():
            pytest.skip(f"real {name} not found under DATA_ROOT ({root})")
        return root

    return find


@pytest.fixture
def struct_array() -> Callable[[list[dict]], np.ndarray]:
    """``struct_array(rows)`` -> a 1 x n MATLAB struct array (numpy structured array of objects) for
    ``scipy.io.savemat``."""

    def make(rows: list[dict]) -> np.ndarray:
        keys = list(rows[0])
        arr = np.zeros((1, len(rows)), dtype=[(k, object) for k in keys])
        for i, r in enumerate(rows):
            for k in keys:
                arr[0, i][k] = r[k]
        return arr

    return make
