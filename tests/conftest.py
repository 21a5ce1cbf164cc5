"""Shared test setup."""

from pathlib import Path

import pyproj  # noqa: F401  (before anything loads ecCodes; see harpnet_cli/io/__init__.py)
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; the test is skipped when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED
