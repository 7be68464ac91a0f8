"""Fixtures shared by the whole suite. Backend-specific servers live in their own conftest."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so tests can import backend_contract


@pytest.fixture(autouse=True)
def _isolated_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Every test gets its own SHEETCACHE_DIR: default caches and outboxes never leak."""
    path = tmp_path_factory.mktemp("sheetcache-home")
    monkeypatch.setenv("SHEETCACHE_DIR", str(path))
    monkeypatch.delenv("SHEETCACHE_URL", raising=False)
    yield path


@pytest.fixture
def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """Environment for child Python processes: this checkout importable, same data dir."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env
