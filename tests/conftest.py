"""Shared fixtures; the shared makers and constants are in ``_helpers`` (``from _helpers import``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `_helpers` importable under any import mode

from _helpers import CAMVID


@pytest.fixture(scope="session")
def camvid() -> Path:
    """The real CamVid root; the test is skipped when it is absent."""
    if not ((CAMVID / "train.txt").is_file() and (CAMVID / "val").is_dir()):
        pytest.skip(f"no CamVid at {CAMVID} (set LRNET_CAMVID)")
    return CAMVID


@pytest.fixture(scope="session", autouse=True)
def _lrnet_home(tmp_path_factory: pytest.TempPathFactory):
    """``$LRNET_HOME`` in a temporary folder: tests never write to the user's cache (exported
    ONNX graphs, int8 graphs, downloads); tests that need their own set it with monkeypatch."""
    import os

    saved = os.environ.get("LRNET_HOME")
    os.environ["LRNET_HOME"] = str(tmp_path_factory.mktemp("lrnet_home"))
    yield
    if saved is None:
        os.environ.pop("LRNET_HOME", None)
    else:
        os.environ["LRNET_HOME"] = saved
