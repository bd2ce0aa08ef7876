"""Fixtures for the app tests (helpers live in app_fixtures.py, a name no other test folder uses)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from app_fixtures import BLOCKS, paint_blocks, rt_models


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    return rt_models.save(rt_models.pixelwise(), tmp_path_factory.mktemp("app_models") / "pixelwise.onnx")


@pytest.fixture
def blocks_scan() -> tuple[np.ndarray, np.ndarray]:
    """A 96 x 128 scan: 1200 px bone, 2000 px fat, 3000 px other tissue."""
    return paint_blocks(96, 128, BLOCKS)
