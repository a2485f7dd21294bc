"""Benchmark: the workbench over HTTP on a store of 30 runs, the latest with N accounts.

    python -m bench.workbench [--accounts 1000000] [--older-accounts 20000] [--clients 8]
                              [--low-clients CPUS] [--workers CPUS] [--requests 400]
                              [--work DIR] [--store-url URL] [--json PATH]

Builds (timed, not part of the figures; reused when ``--work`` already holds a build of
the same size):

- a synthetic book of ``--accounts`` accounts (``write_book_folder``, ~50 invoices each) as
  the staged book, indexed for account history, its names and regions in the store's
  account directory;
- 29 older weekly runs of ``--older-accounts`` accounts each (a sample of the book: their
  accounts have a score history across 30 runs) with 8-feature explanations, then the
  latest run over every account with 60-feature explanations (``bench.store``'s
  ``synthetic_run``, its ids mapped onto the book's).

Then a server started as ``delinq serve`` starts it (``--serve``: migrations applied once,
then ``--workers`` uvicorn processes through ``workbench.serve_workers``, each building
the app of ``workbench.create_app`` wrapped only to add a ``Server-Timing`` header) and
``--clients`` concurrent HTTP clients (threads, each with one keep-alive ``http.client``
connection, :class:`bench.workbench_client.HttpClient`, signed in by API token or, for the
page, by the login form). The clients are the load, not the product: they read each body
as bytes without parsing it (the bench checks status codes and the ``Server-Timing``
header), since on 2 cores their own CPU takes turns with the server's (until session 9
they were ``httpx`` clients: 1.6 CPU ms per worklist request against 0.5 now, at 100k
accounts; what is measured is unchanged). Each scenario sends ``--requests`` requests;
reported per scenario: p50/p95/max of the server time (the app's, from the header) and of
the client's round trip, in milliseconds, the CPU milliseconds the server's processes used
per request (``cpu ms/req``: what a request costs whatever the number of clients waiting)
and those this process, the clients, used per request (``client cpu``). The read scenarios
run again with ``--low-clients`` clients (default one per CPU; rows ``<scenario>@<n>`` in
the JSON), so the figures show both load levels; per server process, the peak RSS
(``server_peak_rss_mb``: VmHWM, which counts the store's and the history index's pages
the process has mapped, shared page cache) and its own memory at the end
(``server_rss_anon_mb``: RssAnon) are recorded:

- ``worklist_first|middle|last``: ``GET /api/worklist`` (50 rows by priority; the middle and
  last pages through the keyset cursor of the row before them);
- ``rare_filter_dpd``: one region, segment and action (under 1% of the rows) by DPD;
- ``name_search``: ``GET /api/worklist?q=<name prefix>`` (a few matching accounts);
- ``filtered_totals``: ``GET /api/worklist/totals`` by segment and region;
- ``account_page``: ``GET /accounts/{id}`` (HTML: SHAP waterfall, invoices, payments,
  score history, events) and ``account_api``: ``GET /api/accounts/{id}``;
- ``event_write_during_publish``: ``POST /api/accounts/{id}/events`` (a note, every 50
  ms per client) while another process publishes an N-account run (then deleted: the
  store stays at 30 runs); ``event_write_idle``: the same writes for 10 s with no publish
  (what the writes cost by themselves on this machine, at this load).

Targets (issue 16, 2 cores): worklist pages and searches p95 < 50 ms; account page p95 <
100 ms; event write during a publish p95 < 200 ms. Other processes inflate every figure:
the load average is recorded before and after. Measured building 100k accounts on 2
loaded cores (load 14-18): 0.83 GB under ``--work``; book 31 s, 29 older runs 186 s,
latest publish 65 s, history index and directory 179 s. 1M accounts (load 15-20): 4.7 GB
under ``--work`` (``disk_gb`` in ``built.json``; ~0.8 GB more while the write scenario's
run is published); book 243 s, older runs 87 s, latest publish 309 s, history index and
directory 1,297 s; measuring took ~18 minutes on a quiet machine (the write scenario's
1M publish yields to every waiting writer); run it again with the same ``--work`` to
measure only (the build is reused; an index or explanation files of an older layout are
rewritten first, their seconds in ``built.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.workbench_client import HttpClient
from bench.workbench_server import cpu_s, free_port, serve, server_processes, status_mb, wait_up

AS_OF = date(2025, 1, 6)
RUNS = 30
USER, PASSWORD = "bench", "bench password 1"
TARGETS_MS = {"worklist_first": 50, "worklist_middle": 50, "worklist_last": 50,
              "rare_filter_dpd": 50, "name_search": 50, "filtered_totals": 50,
              "account_page": 100, "account_api": 100, "event_write_during_publish": 200}
RARE = {"region": "latam", "segment": "late", "action": "personal follow-up"}


# ------------------------------------------------------------------------------ build
def _frames(ids: np.ndarray, *, as_of: date, features: int, seed: int) -> tuple[Any, Any, Any]:
    """A synthetic run (``bench.store.synthetic_run``) over exactly the accounts ``ids``."""
    import pandas as pd

    from bench.store import synthetic_run

    wl, ex, drift = synthetic_run(len(ids), features=features, seed=seed, as_of=as_of)
    rng = np.random.default_rng(seed)
    shuffled = np.asarray(ids, dtype=object)[rng.permutation(len(ids))]
    # synthetic ids are "A<i>": account i of the run is shuffled[i]
    position = wl["account_id"].str.slice(1).astype(np.int64).to_numpy()
    wl["account_id"] = pd.Series(shuffled[position], dtype="str")
    position = ex["account_id"].str.slice(1).astype(np.int64).to_numpy()
    ex["account_id"] = pd.Series(shuffled[position], dtype="str")
    return wl, ex, drift


def _publish(url: str, export: Path, wl: Any, ex: Any, drift: Any, as_of: date) -> str:
    from serving.store import WorklistStore

    with WorklistStore(url, upgrade=True, explanations_dir=export) as store:
        run_id = store.begin_run(as_of=as_of, meta={"model_versions": {
            "early_warning": "3", "persistence": "3"}})
        store.write_run(run_id, worklist=wl, explanations=ex, drift=drift, meta={})
    return run_id


def _reindex(work: Path, url: str) -> float | None:
    """Rebuild a reused build's history index when it is not current (the book changed or
    the index's layout did, :data:`workbench.history.LAYOUT`); seconds taken, None when
    it was current. Done here, not by the server in the background while measuring."""
    from workbench import WorkbenchConfig, open_workbench, refresh_history
    from workbench.history import is_current

    book = work / "staging" / "book"
    if is_current(book, work / "workbench" / "history"):
        return None
    wb = open_workbench(WorkbenchConfig(store_url=url, state_dir=work, book_dir=book,
                                        export_dir=work / "explanations"))
    try:
        t = time.perf_counter()
        refresh_history(wb)
        return round(time.perf_counter() - t, 1)
    finally:
        wb.close()


def _relayout(url: str) -> float | None:
    """Rewrite a reused build's explanation files written in an older layout
    (:data:`serving.store_files.EXPLANATIONS_FORMAT`), as a store publishing with this code
    would have written them; seconds taken, None when every file was current. A store
    keeps reading old files (tested): this is so the account scenarios measure the
    current layout."""
    import pyarrow.parquet as pq
    import sqlalchemy as sa

    from serving import store_files
    from serving import store_schema as S
    from workbench import open_store_engine

    engine = open_store_engine(url)
    try:
        with engine.connect() as conn:
            paths = conn.execute(sa.select(S.explanations.c.path)).scalars().all()
    finally:
        engine.dispose()
    t, done = time.perf_counter(), 0
    for name in paths:
        path = Path(name)
        meta = pq.read_schema(path).metadata or {}
        if meta.get(store_files.FORMAT_KEY) == store_files.EXPLANATIONS_FORMAT.encode():
            continue
        tmp = path.with_name(f".{path.name}.relayout")
        store_files.write_explanations_parquet(pq.read_table(path), tmp)
        os.replace(tmp, path)
        done += 1
    return round(time.perf_counter() - t, 1) if done else None


def build(work: Path, *, accounts: int, older: int, url: str) -> dict[str, Any]:
    """The book, its index and the 30-run store under ``work`` (reused when built)."""
    import pyarrow.parquet as pq

    from features.synthetic import write_book_folder
    from workbench import WorkbenchConfig, open_workbench, refresh_history

    stamp = work / "built.json"
    want = {"accounts": accounts, "older": older, "url": url}
    if stamp.exists():
        built = json.loads(stamp.read_text())
        if {k: built.get(k) for k in want} == want:
            changed = built.pop("token", None) is not None  # before no secret was kept
            index_s = _reindex(work, url)
            if index_s is not None:  # an index of an older layout: rebuilt before measuring
                built["index_rebuilt_s"], changed = index_s, True
            files_s = _relayout(url)
            if files_s is not None:  # explanation files of an older layout: rewritten
                built["explanations_rewritten_s"], changed = files_s, True
            if changed:
                stamp.write_text(json.dumps(built, indent=2))
            return built
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out: dict[str, Any] = dict(want)
    book = work / "staging" / "book"
    t = time.perf_counter()
    write_book_folder(accounts, book, seed=0, start="2023-01-01", end="2024-12-31")
    out["book_s"] = round(time.perf_counter() - t, 1)
    out["invoices"] = pq.ParquetFile(book / "invoices.parquet").metadata.num_rows
    ids = np.asarray(pq.read_table(book / "accounts.parquet", columns=["account_id"])
                     .column("account_id").to_pylist(), dtype=object)
    rng = np.random.default_rng(2)
    sample = ids[rng.choice(len(ids), size=min(older, len(ids)), replace=False)]
    t = time.perf_counter()
    for i in range(RUNS - 1):
        day = AS_OF - timedelta(days=7 * (RUNS - 1 - i))
        _publish(url, work / "explanations", *_frames(sample, as_of=day, features=8,
                                                      seed=100 + i), day)
    out["older_runs_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    out["latest_run"] = _publish(url, work / "explanations",
                                 *_frames(ids, as_of=AS_OF, features=60, seed=1), AS_OF)
    out["latest_publish_s"] = round(time.perf_counter() - t, 1)
    wb = open_workbench(WorkbenchConfig(store_url=url, state_dir=work, book_dir=book,
                                        export_dir=work / "explanations"))
    try:
        t = time.perf_counter()
        refresh_history(wb)  # the history index, the directory, every run's totals
        out["index_and_directory_s"] = round(time.perf_counter() - t, 1)
        from workbench.roles import Role
        from workbench.users import add_user

        add_user(wb.engine, username=USER, role=Role.MANAGER, password=PASSWORD,
                 actor="bench", now=datetime.now(UTC))
    finally:
        wb.close()
    out["disk_gb"] = round(sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
                           / 1e9, 2)
    stamp.write_text(json.dumps(out, indent=2))
    return out


# ------------------------------------------------------------------------------ clients
def stats(values: list[float]) -> dict[str, float]:
    """n, p50, p95 and max of ``values`` (milliseconds), rounded to 0.01."""
    arr = np.asarray(values, dtype=float)
    if not len(arr):
        return {"n": 0}
    return {"n": int(len(arr)), "p50": round(float(np.percentile(arr, 50)), 2),
            "p95": round(float(np.percentile(arr, 95)), 2), "max": round(float(arr.max()), 2)}


def mint_token(url: str) -> str:
    """A new API token of the bench user, for this run only: no secret is written to the
    build folder (the store keeps only its hash, as for every token)."""
    from workbench import open_store_engine
    from workbench.users import create_token

    engine = open_store_engine(url)
    try:
        return create_token(engine, username=USER, name="bench", actor="bench",
                            now=datetime.now(UTC))
    finally:
        engine.dispose()


def _client(base: str, token: str | None) -> HttpClient:
    return HttpClient(base, {"authorization": f"Bearer {token}"} if token else None)


def signed_in(client: Any) -> Any:
    """``client`` signed in through the login form (the pages need a browser session)."""
    page = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None, "no CSRF token on the login page"
    r = client.post("/login", data={"username": USER, "password": PASSWORD,
                                    "csrf_token": csrf.group(1)})
    assert r.status_code in (200, 303), r.status_code
    return client


def _run_scenario(clients: list[Any], requests: list[Callable[[Any], Any]],
                  *, expect: tuple[int, ...] = (200,),
                  server: list[Any] | None = None) -> dict[str, Any]:
    """Send ``requests`` spread over the clients, all at once; server and round-trip ms,
    and the CPU milliseconds the ``server`` processes used per request (the cost that
    does not depend on how many clients wait: other processes on the machine still slow
    it a little, through caches) and this process, the clients, used per request."""
    processes = server or []
    cpu_before = cpu_s(processes)
    client_before = time.process_time()
    timings: list[float] = []
    wall: list[float] = []
    lock = threading.Lock()
    errors: list[str] = []

    def worker(k: int) -> None:
        client = clients[k]
        for i in range(k, len(requests), len(clients)):
            t = time.perf_counter()
            r = requests[i](client)
            dt = (time.perf_counter() - t) * 1000.0
            timing = r.headers.get("server-timing", "")
            with lock:
                if r.status_code not in expect:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                wall.append(dt)
                if timing.startswith("app;dur="):
                    timings.append(float(timing.split("=", 1)[1]))

    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(worker, range(len(clients))))
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    out: dict[str, Any] = {"server_ms": stats(timings), "round_trip_ms": stats(wall),
                           "client_cpu_ms_per_request": round(
                               (time.process_time() - client_before) * 1000.0
                               / max(len(requests), 1), 2)}
    if processes:
        out["server_cpu_ms_per_request"] = round(
            (cpu_s(processes) - cpu_before) * 1000.0 / max(len(requests), 1), 2)
    return out


def _get(path: str, **params: Any) -> Callable[[Any], Any]:
    return lambda c: c.get(path, params={k: v for k, v in params.items() if v is not None})


def measure(base: str, work: Path, built: dict[str, Any], *, url: str, clients_n: int,
            n: int, low_clients: int | None = None,
            server: list[Any] | None = None) -> dict[str, Any]:
    """Every scenario with ``clients_n`` clients; the read scenarios again with
    ``low_clients`` (keys ``<scenario>@<low_clients>``; None: not measured)."""
    import pyarrow.parquet as pq

    accounts = pq.read_table(work / "staging" / "book" / "accounts.parquet",
                             columns=["account_id", "name"])
    ids = np.asarray(accounts.column("account_id").to_pylist(), dtype=object)
    names = np.asarray(accounts.column("name").to_pylist(), dtype=object)
    rng = np.random.default_rng(3)
    token = mint_token(url)
    api = [_client(base, token) for _ in range(clients_n)]
    for c in api:
        c.get("/api/worklist", params={"limit": 1})  # connect, warm
    pages = [signed_in(_client(base, None)) for _ in range(clients_n)]
    out: dict[str, Any] = {}
    levels = [clients_n] + ([low_clients] if low_clients and low_clients != clients_n else [])
    for level in levels:
        for name, (kind, requests) in _reads(ids, names, rng=rng, n=n).items():
            clients = (api if kind == "api" else pages)[:level]
            key = name if level == clients_n else f"{name}@{level}"
            out[key] = {"clients": level,
                        **_run_scenario(clients, requests, server=server)}
    out["event_write_idle"] = _writes_idle(api, ids=ids, rng=rng)
    out["event_write_during_publish"] = _writes_during_publish(
        api, work, url=url, ids=ids, rng=rng, accounts=len(ids))
    for c in api + pages:
        c.close()
    return out


def _reads(ids: np.ndarray, names: np.ndarray, *, rng: np.random.Generator,
           n: int) -> dict[str, tuple[str, list[Callable[[Any], Any]]]]:
    """The read scenarios: name -> (``api`` or ``page`` clients, ``n`` requests)."""
    from workbench.queries import encode_cursor
    from workbench.schemas import Sort

    total = len(ids)
    middle = encode_cursor(Sort.PRIORITY, None, total // 2)
    last = encode_cursor(Sort.PRIORITY, None, max(total - 50, 0))
    # Name prefixes a person would type: a name less its last two characters, any case.
    picked = names[rng.choice(total, size=n)]
    segments = ["preventive", "early", "delinquent", "late"]
    regions = ["north_america", "emea", "apac", "latam"]
    page_sample = [str(a) for a in ids[rng.choice(total, size=n, replace=False)]]
    api_sample = [str(a) for a in ids[rng.choice(total, size=n, replace=False)]]
    return {
        "worklist_first": ("api", [_get("/api/worklist")] * n),
        "worklist_middle": ("api", [_get("/api/worklist", after=middle)] * n),
        "worklist_last": ("api", [_get("/api/worklist", after=last)] * n),
        "rare_filter_dpd": ("api", [_get("/api/worklist", sort="dpd", **RARE)] * n),
        "name_search": ("api", [_get("/api/worklist", q=str(p)[:-2].lower())
                                for p in picked]),
        "filtered_totals": ("api", [
            _get("/api/worklist/totals", segment=segments[i % 4],
                 region=regions[(i // 4) % 4]) for i in range(n)]),
        "account_page": ("page", [_get(f"/accounts/{a}") for a in page_sample]),
        "account_api": ("api", [_get(f"/api/accounts/{a}") for a in api_sample]),
    }


def _paced_writes(api: list[Any], *, ids: np.ndarray, rng: np.random.Generator,
                  running: Callable[[], bool]) -> tuple[list[float], list[float]]:
    """Every client writes a note on a random account every 50 ms while ``running()``;
    returns the server and round-trip milliseconds of the writes that ended meanwhile."""
    server: list[float] = []
    wall: list[float] = []
    lock = threading.Lock()
    seeds = iter(rng.integers(0, 2**31, size=len(api)).tolist())

    def writer(client: Any) -> None:
        mine = np.random.default_rng(next(seeds))  # a generator per thread
        while running():
            account = str(ids[int(mine.integers(len(ids)))])
            t = time.perf_counter()
            r = client.post(f"/api/accounts/{account}/events",
                            json={"kind": "note", "note": "bench: written during a publish"})
            dt = (time.perf_counter() - t) * 1000.0
            if not running():
                break  # the publish ended while this write was in flight
            assert r.status_code == 201, r.text[:200]
            with lock:
                wall.append(dt)
                server.append(float(r.headers["server-timing"].split("=", 1)[1]))
            time.sleep(0.05)  # an analyst's pace, times eight

    with ThreadPoolExecutor(len(api)) as pool:
        list(pool.map(writer, api))
    return server, wall


def _writes_idle(api: list[Any], *, ids: np.ndarray, rng: np.random.Generator,
                 seconds: float = 10.0) -> dict[str, Any]:
    """The same paced event writes with no publish running: the writes' own cost."""
    end = time.perf_counter() + seconds
    server, wall = _paced_writes(api, ids=ids, rng=rng,
                                 running=lambda: time.perf_counter() < end)
    return {"server_ms": stats(server), "round_trip_ms": stats(wall)}


def _writes_during_publish(api: list[Any], work: Path, *, url: str, ids: np.ndarray,
                           rng: np.random.Generator, accounts: int) -> dict[str, Any]:
    """Event writes by every client while another process publishes an N-account run."""
    ready = work / "publish.ready"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "bench.workbench", "--publish-only",
                             "--work", str(work), "--store-url", url])
    try:
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"the publisher exited with {proc.returncode}")
            time.sleep(0.05)
        t = time.perf_counter()
        server, wall = _paced_writes(api, ids=ids, rng=rng, running=lambda: proc.poll() is None)
        publish_s = time.perf_counter() - t
        if proc.wait() != 0:
            raise RuntimeError(f"the publisher exited with {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
    info = json.loads(ready.read_text() or "{}")
    return {"server_ms": stats(server), "round_trip_ms": stats(wall),
            "publish_s": round(publish_s, 1), "accounts": accounts, **info}


def publish_only(work: Path, url: str) -> None:
    """The publisher of the write scenario: an N-account run as of the day after the
    latest, published (``ready`` written once its frames are built), then deleted."""
    import pyarrow.parquet as pq

    from serving.store import WorklistStore

    ids = np.asarray(pq.read_table(work / "staging" / "book" / "accounts.parquet",
                                   columns=["account_id"]).column("account_id").to_pylist(),
                     dtype=object)
    day = AS_OF + timedelta(days=1)
    wl, ex, drift = _frames(ids, as_of=day, features=60, seed=9)
    with WorklistStore(url, explanations_dir=work / "explanations") as store:
        run_id = store.begin_run(as_of=day, meta={})
        (work / "publish.ready").write_text("{}")
        t = time.perf_counter()
        store.write_run(run_id, worklist=wl, explanations=ex, drift=drift, meta={})
        took = time.perf_counter() - t
        store.delete_run(run_id)
    (work / "publish.ready").write_text(json.dumps({"write_run_s": round(took, 1)}))


# ------------------------------------------------------------------------------ report
def table(results: dict[str, Any]) -> str:
    """One row per scenario and number of clients: server p50/p95 (ms), the target, the
    server's and the clients' CPU ms per request, the round trip p95."""
    lines = [f"{'scenario':<28} {'clients':>7} {'server p50':>10} {'p95':>8} "
             f"{'target p95':>10} {'met':>4} {'cpu ms/req':>10} {'client cpu':>10} "
             f"{'round trip p95':>15}"]
    names = [*TARGETS_MS, "event_write_idle"]  # idle: no target, for comparison
    keys = [k for name in names for k in sorted(
        (k for k in results if k == name or k.startswith(f"{name}@")), key=len)]
    for key in keys:
        r = results[key]
        name = key.split("@", 1)[0]
        s, w = r["server_ms"], r["round_trip_ms"]
        target = TARGETS_MS.get(name)
        met = "-" if target is None else "yes" if s.get("p95", float("inf")) < target else "NO"
        cpu = r.get("server_cpu_ms_per_request")
        client = r.get("client_cpu_ms_per_request")
        lines.append(f"{name:<28} {r.get('clients', '-'):>7} "
                     f"{s.get('p50', float('nan')):>10.1f} "
                     f"{s.get('p95', float('nan')):>8.1f} {target or '-':>10} {met:>4} "
                     f"{'-' if cpu is None else f'{cpu:.1f}':>10} "
                     f"{'-' if client is None else f'{client:.1f}':>10} "
                     f"{w.get('p95', float('nan')):>15.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from workbench.config import default_workers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--older-accounts", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--low-clients", type=int, default=os.cpu_count() or 1,
                        help="The read scenarios again with this many clients (default: "
                        "one per CPU; 0: not measured).")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="Server processes (default: the number of CPUs, as delinq "
                        "serve).")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--store-url", default=None,
                        help="Store URL (default: SQLite under --work).")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--publish-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    keep = args.work is not None
    work = (args.work or Path(tempfile.mkdtemp(prefix="bench_workbench_"))).resolve()
    url = args.store_url or f"sqlite:///{work / 'worklist.db'}"
    if args.serve:
        serve(work, url, args.port, args.workers)
        return {}
    if args.publish_only:
        publish_only(work, url)
        return {}
    out: dict[str, Any] = {"load_before": round(os.getloadavg()[0], 2),
                           "cpus": os.cpu_count(), "workers": args.workers}
    try:
        t = time.perf_counter()
        built = build(work, accounts=args.accounts, older=args.older_accounts, url=url)
        out["build"] = built
        out["build_s"] = round(time.perf_counter() - t, 1)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "bench.workbench", "--serve",
                                   "--work", str(work), "--store-url", url,
                                   "--port", str(port), "--workers", str(args.workers)])
        try:
            base = f"http://127.0.0.1:{port}"
            wait_up(base, server)
            processes = server_processes(server.pid, args.workers)
            out["results"] = measure(base, work, built, url=url, clients_n=args.clients,
                                     n=args.requests, low_clients=args.low_clients,
                                     server=processes)
            out["server_peak_rss_mb"] = status_mb(processes, "VmHWM")
            out["server_rss_anon_mb"] = status_mb(processes, "RssAnon")
        finally:
            server.terminate()
            server.wait(timeout=30)
        out["load_after"] = round(os.getloadavg()[0], 2)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2, default=str))
    print()
    print(f"{args.accounts:,} accounts in the latest of {RUNS} runs; {args.clients} and "
          f"{args.low_clients} clients; {args.workers} server processes; load "
          f"{out['load_before']} -> {out.get('load_after')} on {out['cpus']} CPUs; server "
          f"peak RSS MB {out.get('server_peak_rss_mb')} (mapped files included); own memory "
          f"(RssAnon) MB {out.get('server_rss_anon_mb')}")
    print(table(out.get("results", {})))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
