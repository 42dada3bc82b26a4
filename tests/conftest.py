"""Shared fixtures: the real-data root (tests that need it skip with a reason when it is absent), one torch thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    """``$DATA_ROOT`` (or ``../shared/data`` beside the repo) when it holds the shared real datasets."""
    here = Path(__file__).resolve().parent.parent
    candidates = [os.environ.get("DATA_ROOT"), here.parent / "shared" / "data"]
    for c in candidates:
        if c and Path(c).is_dir() and any(Path(c).glob("*/SOURCE.md")):
            return Path(c).resolve()
    pytest.skip("real datasets not found: set DATA_ROOT to a folder like ../shared/data")


@pytest.fixture
def one_thread():
    """Tiny networks run fastest on one thread (no OpenMP hand-offs on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
