"""Workbench fixtures: one scored store per session (the shared ``trained_state`` scored
as of its date, its book staged and indexed), copied fresh for each test that writes.

``bench``: a :class:`Bench` over a fresh copy: the app in a ``TestClient``, a movable UTC
clock, and one user per role with an API token (``bench.client(role)``).
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from features.contract.io import write_book
from serving.store_rows import rows_dir
from tests.factories import TrainedState
from workbench import WorkbenchConfig, create_app, open_workbench, refresh_history
from workbench.roles import Role
from workbench.users import add_user, create_token

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Scored:
    """The session's scored state: a SQLite store, the staged book, the run's date."""

    db: Path
    book_dir: Path
    explanations_dir: Path
    index_dir: Path
    as_of: datetime


@pytest.fixture(scope="session")
def scored(trained_state: TrainedState, tmp_path_factory: pytest.TempPathFactory) -> Scored:
    from serving.score_run import score_into_store

    root = tmp_path_factory.mktemp("workbench_state")
    book_dir = root / "staging" / "book"
    write_book(trained_state.book, book_dir)
    db = root / "worklist.db"
    score_into_store(trained_state.book, as_of=trained_state.as_of, models=trained_state.models,
                     store_url=f"sqlite:///{db}", export_dir=None)
    config = WorkbenchConfig(store_url=f"sqlite:///{db}", state_dir=root, book_dir=book_dir)
    wb = open_workbench(config)
    try:
        refresh_history(wb)
    finally:
        wb.close()
    return Scored(db=db, book_dir=book_dir, explanations_dir=root / "worklist_explanations",
                  index_dir=root / "workbench" / "history",
                  as_of=trained_state.as_of.to_pydatetime().replace(tzinfo=UTC))


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now = self.now + timedelta(**kwargs)


@dataclass
class Bench:
    """A fresh workbench over a copy of the scored store."""

    app: object
    config: WorkbenchConfig
    clock: Clock
    tokens: dict[Role, str] = field(default_factory=dict)

    def client(self, role: Role | None = None) -> TestClient:
        client = TestClient(self.app)  # type: ignore[arg-type]
        if role is not None:
            client.headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return client


def copy_store(scored: Scored, folder: Path) -> Path:
    """A copy of the scored SQLite store in ``folder``, with its runs' rows files (found
    beside the store file: ``serving.store_rows``); its explanation files are shared
    (their paths are absolute in the store)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "worklist.db"
    src, dst = sqlite3.connect(scored.db), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    if (rows := rows_dir(scored.db)).is_dir():
        shutil.copytree(rows, rows_dir(target))
    shutil.copytree(scored.index_dir, folder / "workbench" / "history")
    return target


def make_bench(scored: Scored, folder: Path, **options: object) -> Bench:
    db = copy_store(scored, folder)
    # The run is as of the state's date; "today" is the day after it (09:00 UTC).
    clock = Clock(scored.as_of + timedelta(hours=9))
    config = WorkbenchConfig(store_url=f"sqlite:///{db}", state_dir=folder,
                             book_dir=scored.book_dir, clock=clock, **options)  # type: ignore
    wb = open_workbench(config)
    bench = Bench(app=create_app(config, workbench=wb), config=config, clock=clock)
    for role in Role:
        add_user(wb.engine, username=role.value, role=role, password=PASSWORD, actor="test",
                 now=clock())
        bench.tokens[role] = create_token(wb.engine, username=role.value, name="test",
                                          actor="test", now=clock())
    return bench


@pytest.fixture
def bench(scored: Scored, tmp_path: Path) -> Iterator[Bench]:
    b = make_bench(scored, tmp_path / "state")
    yield b
    b.app.state.wb.close()  # type: ignore[attr-defined]
