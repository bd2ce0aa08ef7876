"""Fixtures for tests/training (helpers live in tr_fixtures.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
pytest.importorskip("torch", reason="torch is not installed (pip install 'bonemarrow-seg[train]')")
import torch  # noqa: E402

from tr_fixtures import write_dataset


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "ds", {"train": 3, "val": 1})


@pytest.fixture(autouse=True)
def _one_thread():
    """The test machine is shared: keep torch to one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
