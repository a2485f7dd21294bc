"""Schema versions of the worklist store (Alembic), on SQLite and on a real PostgreSQL:
the migrated tables are store_schema's, a store written by the release before migrations
(its own code, from git) upgrades keeping every run, a further revision applies exactly once
(also with two upgraders at once) or not at all, readers never migrate, and stores that are
newer or foreign are refused untouched."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import tarfile
import textwrap
import threading
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from serving import store_io, store_migrate, store_schema, store_tables
from serving.store import StoreVersionError, WorklistStore, current_revision, upgrade
from serving.store_migrate import BASELINE, VERSION_TABLE, alembic_config
from tests.serving.test_store import DAY, frames, publish

REPO = Path(__file__).resolve().parents[2]
#: main when the store got migrations: its store code wrote the stores users have today.
PRE_MIGRATIONS_RELEASE = "6c80ff7ccca08aff9ea623a30f9c993b54e8eb34"
STORE_FILES = ("serving/__init__.py", "serving/store.py", "serving/store_schema.py",
               "serving/store_bulk.py", "serving/store_io.py")
MIGRATIONS_DIR = REPO / "serving" / "migrations"
#: main at store revision 0002 (run heartbeat), the last before worklist scorers (0003).
REVISION_0002_RELEASE = "9f2dcb80eb4289d026ebd2b528bc3dc3890c8580"
REVISION_0002_FILES = (*STORE_FILES, "serving/store_migrate.py", "serving/store_records.py",
                       "serving/store_runs.py", "serving/redact.py", "serving/migrations")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'worklist.db'}"
    return request.getfixturevalue("pg_schema_url")


def _engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(parsed)


def _tables(url: str) -> set[str]:
    engine = _engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _shape(url: str) -> dict[str, Any]:
    """Everything the DDL decides, per table: columns, keys, indexes, foreign keys."""
    engine = _engine(url)
    try:
        insp = sa.inspect(engine)
        out: dict[str, Any] = {}
        for t in sorted(set(insp.get_table_names()) - {VERSION_TABLE}):
            out[t] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"])
                            for c in insp.get_columns(t)],
                "pk": insp.get_pk_constraint(t)["constrained_columns"],
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in insp.get_indexes(t)),
                "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"])
                              for f in insp.get_foreign_keys(t)),
            }
        return out
    finally:
        engine.dispose()


def _count(url: str, sql: str) -> Any:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


def _everything(store: WorklistStore) -> dict[str, Any]:
    """Every run with its worklist, drift and explanations, as read through the store."""
    runs = store.list_runs()
    out: dict[str, Any] = {"runs": runs, "worklists": {}, "drift": {}, "explanations": {}}
    for run in runs.itertuples():
        out["drift"][run.run_id] = store.read_drift(run.run_id)
        if run.is_current:
            out["worklists"][run.run_id] = store.read_worklist(as_of=run.as_of)
            out["explanations"][run.run_id] = store.read_explanations(run.run_id)
    return out


#: Worklist columns later revisions added, and what rows written before them read as.
LATER_WORKLIST = {"scorer": store_schema.LEGACY_SCORER, "calibration": None,
                  "hold": None, "hold_date": None, "hold_ends": None}


def _assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    # Runs read by older code lack the later columns; those are empty for its runs.
    later = [c for c in got["runs"].columns if c not in want["runs"].columns]
    assert got["runs"][later].isna().all().all(), got["runs"][later]
    pd.testing.assert_frame_equal(got["runs"].drop(columns=later), want["runs"])
    for part in ("worklists", "drift", "explanations"):
        assert got[part].keys() == want[part].keys(), part
        for run_id, frame in want[part].items():
            mine = got[part][run_id]
            if part == "worklists":  # older code's rows: read as ranked by a model
                for col in [c for c in mine.columns if c not in frame.columns]:
                    assert col in LATER_WORKLIST, col
                    value = LATER_WORKLIST[col]
                    assert (mine[col].isna() if value is None else mine[col] == value).all()
                mine = mine[frame.columns]
            pd.testing.assert_frame_equal(mine, frame, obj=f"{part} {run_id}")


# ------------------------------------------------------------------------ the chain
def test_one_head_and_it_is_the_revision_store_schema_declares() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [store_schema.REVISION]
    chain = [s.revision for s in script.walk_revisions()][::-1]
    assert chain[0] == BASELINE == "0001"
    assert all(rev.isdigit() and len(rev) == 4 for rev in chain)
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()  # for drafting the next revision


def test_migrated_tables_are_exactly_store_schema(url: str) -> None:
    assert current_revision(url) is None
    assert upgrade(url) == store_schema.REVISION
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
            diff = compare_metadata(context, store_tables.metadata)
    finally:
        engine.dispose()
    assert diff == []
    # compare_metadata skips what it cannot compare (the partial index): check it directly.
    assert ("ux_runs_current_as_of", ("as_of",), True) in _shape(url)["runs"]["indexes"]
    assert current_revision(url) == store_schema.REVISION
    assert "alembic_version" not in _tables(url)  # never shares a table with MLflow's


# ------------------------------------------------------------------------ previous release
_OLD_WRITER = textwrap.dedent("""
    import pickle, sys
    from datetime import date
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import serving.store as old
    assert old.__file__.startswith(sys.argv[1]), old.__file__
    url, work = sys.argv[2], Path(sys.argv[3])
    plan = pickle.loads((work / "plan.pkl").read_bytes())
    store = old.WorklistStore(url, export_dir=work / "exports",
                              explanations_dir=work / "explanations")
    for step in plan:
        run_id = store.begin_run(as_of=step["as_of"], meta=step["meta"])
        if step["fail"]:
            store.fail_run(run_id, message="no champion model")
            continue
        store.write_run(run_id, worklist=step["wl"], explanations=step["ex"],
                        drift=step["dr"], meta={"timings": {"features": 1.5}})
    runs = store.list_runs()
    seen = {"runs": runs, "worklists": {}, "drift": {}, "explanations": {}}
    for run in runs.itertuples():
        seen["drift"][run.run_id] = store.read_drift(run.run_id)
        if run.is_current:
            seen["worklists"][run.run_id] = store.read_worklist(as_of=run.as_of)
            seen["explanations"][run.run_id] = store.read_explanations(run.run_id)
    (work / "seen.pkl").write_bytes(pickle.dumps(seen))
    store.close()
""")


def _previous_release_store(
    url: str, work: Path, *, release: str = PRE_MIGRATIONS_RELEASE,
    files: tuple[str, ...] = STORE_FILES,
) -> dict[str, Any]:
    """Write runs with a previous release's own store code (a subprocess); its reads."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", release, *files],
        capture_output=True, check=False,
    )
    if archive.returncode != 0:
        pytest.fail(
            f"needs the git history holding {release[:10]} (a full clone; "
            f"`git fetch --unshallow`): {archive.stderr.decode().strip()}", pytrace=False)
    code = work / "release"
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(code, filter="data")
    plan = []
    later = DAY + timedelta(days=7)
    for as_of, seed, fail in ((DAY, 1, False), (later, 2, False), (DAY, 3, False),
                              (later, 4, True)):
        wl, ex, dr = frames(25 + seed, as_of=as_of, seed=seed, version=str(seed))
        wl = wl.drop(columns=list(LATER_WORKLIST))  # that release's worklist columns
        plan.append({"as_of": as_of, "fail": fail, "wl": wl, "ex": ex, "dr": dr, "meta": {
            "model_versions": {"early_warning": str(seed), "persistence": f"p{seed}"},
            "feature_set_version": "fs1", "data": "synthetic"}})
    (work / "plan.pkl").write_bytes(pickle.dumps(plan))
    done = subprocess.run([sys.executable, "-c", _OLD_WRITER, str(code), url, str(work)],
                          capture_output=True, text=True, cwd=work, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return pickle.loads((work / "seen.pkl").read_bytes())


def test_a_store_of_the_previous_release_upgrades_keeping_every_run(
    url: str, tmp_path: Path
) -> None:
    seen = _previous_release_store(url, tmp_path)
    assert len(seen["runs"]) == 4 and set(seen["runs"]["status"]) == {"succeeded", "failed"}
    assert VERSION_TABLE not in _tables(url)
    old_shape = _shape(url)
    counts = {t: _count(url, f'SELECT COUNT(*) FROM "{t}"')
              for t in ("runs", "worklist", "drift", "explanations")}
    explanations = {"explanations_dir": tmp_path / "explanations"}

    # It reads as the baseline; a reader of this code (a later revision) refuses it and
    # says what to do, without writing anything.
    assert current_revision(url) == BASELINE
    if store_schema.REVISION == BASELINE:
        with WorklistStore(url, **explanations) as reader:
            _assert_same(_everything(reader), seen)
    else:
        with pytest.raises(StoreVersionError, match=r"revision 0001 .*delinq db upgrade"):
            WorklistStore(url, **explanations)
    assert VERSION_TABLE not in _tables(url)
    assert _shape(url) == old_shape

    assert upgrade(url) == store_schema.REVISION
    assert current_revision(url) == store_schema.REVISION
    assert _count(url, f"SELECT version_num FROM {VERSION_TABLE}") == store_schema.REVISION
    assert {t: _count(url, f'SELECT COUNT(*) FROM "{t}"') for t in counts} == counts
    with WorklistStore(url, **explanations) as store:
        _assert_same(_everything(store), seen)
        # ... and keeps working: a new run for DAY replaces the old release's run.
        old_current = store.current_run(as_of=DAY)
        new = publish(store, 9, seed=5)
        assert store.list_runs().set_index("run_id").loc[old_current.run_id,
                                                         "replaced_by"] == new.run_id
    # The previous release's DDL is exactly the baseline revision's, on this database.
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    if url.startswith("sqlite"):
        upgrade(fresh, revision=BASELINE)
        assert _shape(fresh) == old_shape
    else:
        # Nothing was rebuilt by the stamp; later revisions only added nullable columns
        # (to runs and worklist), relaxed worklist.probability to nullable (0003), and added
        # tables (0004: the workbench's; 0005: worklist_totals), the index
        # ix_worklist_account (0004) and one index per sort key (0005).
        now = {t: shape for t, shape in _shape(url).items() if t in old_shape}
        later = {"ix_worklist_account", "ix_worklist_probability", "ix_worklist_balance",
                 "ix_worklist_dpd"}
        now["worklist"]["indexes"] = [i for i in now["worklist"]["indexes"]
                                      if i[0] not in later]
        for table in ("runs", "worklist"):
            old_names = {c[0] for c in old_shape[table]["columns"]}
            added = [c for c in now[table]["columns"] if c[0] not in old_names]
            assert all(nullable for _, _, nullable in added), added
            now[table]["columns"] = [c for c in now[table]["columns"] if c[0] in old_names]
        relaxed = {("worklist", "probability")}
        for table, column in relaxed:
            now[table]["columns"] = [(n, t, False if n == column else nl)
                                     for n, t, nl in now[table]["columns"]]
        assert now == old_shape


def test_a_writer_stamps_a_previous_release_store_when_it_opens_it(
    url: str, tmp_path: Path
) -> None:
    seen = _previous_release_store(url, tmp_path)
    with WorklistStore(url, explanations_dir=tmp_path / "explanations", upgrade=True) as w:
        _assert_same(_everything(w), seen)
    assert current_revision(url) == store_schema.REVISION
    assert VERSION_TABLE in _tables(url)


def test_a_store_at_revision_0002_upgrades_keeping_every_run(url: str, tmp_path: Path) -> None:
    """0003 copies the worklist table on SQLite (probability becomes nullable): every run,
    row and value of a store written by the 0002 release's own code survives it."""
    seen = _previous_release_store(url, tmp_path, release=REVISION_0002_RELEASE,
                                   files=REVISION_0002_FILES)
    assert len(seen["runs"]) == 4 and set(seen["runs"]["status"]) == {"succeeded", "failed"}
    assert current_revision(url) == "0002"
    counts = {t: _count(url, f'SELECT COUNT(*) FROM "{t}"')
              for t in ("runs", "worklist", "drift", "explanations")}
    explanations = {"explanations_dir": tmp_path / "explanations"}
    with pytest.raises(StoreVersionError, match=r"revision 0002 .*delinq db upgrade"):
        WorklistStore(url, **explanations)

    assert upgrade(url) == store_schema.REVISION
    assert {t: _count(url, f'SELECT COUNT(*) FROM "{t}"') for t in counts} == counts
    assert _count(url, "SELECT COUNT(*) FROM worklist WHERE scorer IS NOT NULL") == 0
    with WorklistStore(url, **explanations) as store:
        _assert_same(_everything(store), seen)
        # ... and a rule-ranked run without probabilities is written beside them.
        wl, ex, dr = frames(9, seed=6)
        wl.loc[wl["rank"] > 5, ["scorer", "calibration", "probability"]] = [
            "aging_rule", "none", np.nan]
        run_id = store.begin_run(as_of=DAY, meta={})
        store.write_run(run_id, worklist=wl, explanations=ex, drift=dr, meta={})
        assert store.read_worklist(as_of=DAY)["probability"].isna().sum() == 4
    shape = _shape(url)["worklist"]
    assert shape["pk"] == ["run_id", "rank"]
    assert ("probability", "DOUBLE", True) in [
        (n, t.split(" ")[0].replace("DOUBLE_PRECISION", "DOUBLE"), nl)
        for n, t, nl in shape["columns"]]


def test_0010_fills_the_history_from_every_run_s_rows_and_records_no_rows_file(
        url: str, tmp_path: Path) -> None:
    """0010 copies the history columns of every run's worklist rows (published or not)
    into ``worklist_history`` and adds ``runs.rows_path`` empty: the
    rows of runs written before it stay in ``worklist``, read as before."""
    from alembic import command

    explanations = {"explanations_dir": tmp_path / "ex"}
    with WorklistStore(url, upgrade=True, **explanations) as store:
        runs = [publish(store, 6), publish(store, 4, as_of=DAY + timedelta(days=1), seed=3),
                publish(store, 5, seed=4)]  # replaces the first
        before = {r.run_id: store.read_worklist(as_of=r.as_of) for r in runs[1:]}
    cols = ", ".join(store_schema.HISTORY_COLUMNS)
    history_sql = f"SELECT run_id, {cols} FROM worklist_history ORDER BY run_id, account_id"
    worklist_sql = f"SELECT run_id, {cols} FROM worklist ORDER BY run_id, account_id"
    engine = store_io.make_engine(store_io.normalise_url(url))
    try:
        with engine.connect() as conn:
            written = conn.exec_driver_sql(history_sql).all()  # by this code's publish
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO worklist (run_id, rank, account_id, segment, "
                                 "open_balance, model, priority, action, as_of) VALUES "
                                 "('failed-run', 1, 'X1', 'current', 1.0, 'early_warning', "
                                 "0.5, 'monitor', '2024-03-01')")
            command.downgrade(alembic_config(conn), "0009")
    finally:
        engine.dispose()
    assert "worklist_history" not in _tables(url)
    assert upgrade(url) == store_schema.REVISION
    engine = store_io.make_engine(store_io.normalise_url(url))
    try:
        with engine.connect() as conn:
            filled = conn.exec_driver_sql(history_sql).all()
            assert filled == conn.exec_driver_sql(worklist_sql).all()
            # The replaced run's rows went after its replacement's flip.
            assert {r[0] for r in filled} == {runs[1].run_id, runs[2].run_id, "failed-run"}
            assert [r for r in filled if r[0] != "failed-run"] == written
            assert conn.exec_driver_sql(
                "SELECT COUNT(*) FROM runs WHERE rows_path IS NOT NULL").scalar() == 0
    finally:
        engine.dispose()
    with WorklistStore(url, **explanations) as store:
        for run in runs[1:]:
            pd.testing.assert_frame_equal(store.read_worklist(as_of=run.as_of),
                                          before[run.run_id])


# ------------------------------------------------------------------------ a further revision
#: This code's newest revision and the dummy revision the tests below add after it.
HEAD = store_schema.REVISION
NEXT = f"{int(HEAD) + 1:04d}"
_SECOND = textwrap.dedent('''
    """Dummy second revision: a table and one row (counts how often it ran)."""
    import sqlalchemy as sa
    from alembic import op

    revision = "{NEXT}"
    down_revision = "{HEAD}"
    branch_labels = None
    depends_on = None


    def upgrade() -> None:
        table = op.create_table("dummy_events", sa.Column("note", sa.Text, nullable=False))
        op.bulk_insert(table, [{"note": "ran"}])
        op.add_column("runs", sa.Column("dummy_flag", sa.Boolean))
        {FAIL}


    def downgrade() -> None:
        raise NotImplementedError
''')


def _with_second_revision(tmp_path: Path, *, fail: bool = False) -> Path:
    """A copy of the store's migrations plus revision NEXT (failing at its end if asked)."""
    where = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, where, ignore=shutil.ignore_patterns("__pycache__"))
    body = _SECOND.replace("{FAIL}", f'raise RuntimeError("{NEXT} broke")' if fail else "pass")
    body = body.replace("{NEXT}", NEXT).replace("{HEAD}", HEAD)
    (where / "versions" / f"{NEXT}_dummy.py").write_text(body)
    return where


def test_a_second_revision_applies_exactly_once_and_upgrade_is_idempotent(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = _with_second_revision(tmp_path)
    with WorklistStore(url, explanations_dir=tmp_path / "ex") as store:
        publish(store, 12)
        before = _everything(store)
    assert upgrade(url, script_location=where) == NEXT
    assert upgrade(url, script_location=where) == NEXT
    assert _count(url, "SELECT COUNT(*) FROM dummy_events") == 1
    assert _count(url, f"SELECT COUNT(*) FROM {VERSION_TABLE}") == 1
    # This code's schema is HEAD: a store at NEXT is newer, refused for everyone, untouched.
    for attempt in (lambda: WorklistStore(url), lambda: WorklistStore(url, upgrade=True),
                    lambda: upgrade(url)):
        with pytest.raises(StoreVersionError, match=f"{NEXT}.*newer delinq.*nothing was changed"):
            attempt()
    assert current_revision(url) == NEXT
    # Code that knows NEXT reads every run as before.
    _code_knowing(where, monkeypatch)
    with WorklistStore(url, explanations_dir=tmp_path / "ex") as store:
        _assert_same(_everything(store), before)


def _code_knowing(where: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this code's schema the newest revision of ``where``, as a release shipping it."""
    monkeypatch.setattr(store_migrate, "MIGRATIONS", str(where))
    monkeypatch.setattr(store_schema, "REVISION", NEXT)


def test_a_reader_refuses_an_older_store_and_a_writer_upgrades_it(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = _with_second_revision(tmp_path)
    with WorklistStore(url, explanations_dir=tmp_path / "ex") as store:
        publish(store, 10)
        before = _everything(store)
    _code_knowing(where, monkeypatch)
    with pytest.raises(StoreVersionError,
                       match=rf"revision {HEAD}.*needs {NEXT}.*delinq db upgrade"):
        WorklistStore(url)
    assert current_revision(url) == HEAD
    assert "dummy_events" not in _tables(url)
    with WorklistStore(url, explanations_dir=tmp_path / "ex", upgrade=True) as writer:
        _assert_same(_everything(writer), before)
    with WorklistStore(url, explanations_dir=tmp_path / "ex") as reader:  # now fine
        _assert_same(_everything(reader), before)
    assert _count(url, "SELECT COUNT(*) FROM dummy_events") == 1


def test_two_upgraders_at_once_apply_the_revision_once(url: str, tmp_path: Path) -> None:
    where = _with_second_revision(tmp_path)
    upgrade(url)
    results: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def upgrader() -> None:
        try:
            start.wait()
            results.append(upgrade(url, script_location=where))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upgrader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert results == [NEXT] * 3
    assert _count(url, "SELECT COUNT(*) FROM dummy_events") == 1


def test_a_failing_revision_leaves_the_store_as_it_was(url: str, tmp_path: Path) -> None:
    where = _with_second_revision(tmp_path, fail=True)
    with WorklistStore(url, explanations_dir=tmp_path / "ex") as store:
        publish(store, 10)
        before = _everything(store)
    shape = _shape(url)
    with pytest.raises(RuntimeError, match=f"{NEXT} broke"):
        upgrade(url, script_location=where)
    assert current_revision(url) == HEAD
    assert _shape(url) == shape  # no dummy_events table, no dummy_flag column
    with WorklistStore(url, explanations_dir=tmp_path / "ex") as store:
        _assert_same(_everything(store), before)


# ------------------------------------------------------------------------ refusals
def test_tables_that_are_not_the_store_are_refused_untouched(url: str) -> None:
    engine = _engine(url)
    with engine.begin() as conn:  # e.g. another application's "runs" in a shared database
        conn.exec_driver_sql("CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE drift (run_id TEXT, position INTEGER)")
    engine.dispose()
    for attempt in (lambda: WorklistStore(url), lambda: WorklistStore(url, upgrade=True),
                    lambda: upgrade(url), lambda: current_revision(url)):
        with pytest.raises(StoreVersionError) as info:
            attempt()
        message = str(info.value)
        assert "not a store of a known release" in message and "nothing was changed" in message
        assert "'runs' lacks column(s) ['as_of'" in message and "'run_uuid'" in message
        assert "'worklist' is missing" in message and "\n" not in message
    assert _tables(url) == {"runs", "drift"}


def test_current_revision_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nowhere' / 'worklist.db'}"
    assert current_revision(url) is None
    assert not (tmp_path / "nowhere").exists()
    with WorklistStore(url) as store:  # anyone may create an empty store (nothing to lose)
        assert store.list_runs().empty
    assert current_revision(url) == store_schema.REVISION


def test_a_store_stamped_by_a_newer_release_is_refused(url: str) -> None:
    upgrade(url)
    engine = _engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    engine.dispose()
    for attempt in (lambda: WorklistStore(url), lambda: upgrade(url)):
        with pytest.raises(StoreVersionError, match="9999.*newer delinq"):
            attempt()
    assert current_revision(url) == "9999"


def test_messages_show_the_store_without_its_password() -> None:
    url = sa.make_url("postgresql+psycopg://delinq:s3cret-pw@db.example/store")
    message = str(store_migrate._newer(store_io.display_url(url), "9999"))
    assert "s3cret-pw" not in message and "delinq:***@db.example" in message


def test_reading_an_up_to_date_store_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    probe = ("import sys; from serving.store import WorklistStore; "
             f"WorklistStore({url!r}).read_worklist(); "
             "print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=REPO, check=True)
    assert out.stdout.strip() == "False"
