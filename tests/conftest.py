"""Shared pytest fixtures and settings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


@pytest.fixture(scope="module")
def peaks():
    """The reluMIP peaks network on its box ``[-3, 3]^2`` (:func:`helpers.peaks`)."""
    import helpers

    return helpers.peaks()


@pytest.fixture(scope="module")
def peaks_exact():
    """The exact pre-activation ranges of every peaks layer (:func:`helpers.peaks_exact_ranges`)."""
    import helpers

    return helpers.peaks_exact_ranges()
