"""Shared pytest fixtures and settings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

os.environ.setdefault("KERAS_BACKEND", "torch")

# Property tests are deterministic by default (the same examples on every machine, so CI
# checks what was checked here); `pytest --hypothesis-profile explore` draws new random
# examples on every run, to hunt for cases worth keeping as an explicit @example.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False, max_examples=250)
settings.load_profile("deterministic")

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
