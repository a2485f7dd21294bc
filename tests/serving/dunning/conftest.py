"""A dunning store (SQLite, migrated to the newest revision) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from serving import store_io
from serving.store import WorklistStore


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    url = f"sqlite:///{tmp_path / 'worklist.db'}"
    WorklistStore(url, upgrade=True).close()
    eng = store_io.make_engine(store_io.normalise_url(url))
    yield eng
    eng.dispose()
