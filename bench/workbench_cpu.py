"""CPU milliseconds of one workbench request, in process, per read scenario of
``bench.workbench``:

    python -m bench.workbench_cpu --work DIR [--requests 200] [--scenario NAME ...]
                                  [--profile NAME] [--dump PATH] [--json PATH]

``DIR`` is a build of ``bench.workbench`` (``--work``; its store's migrations are applied
and a bench API token is minted, so measure a copy of a build you must not write to).
The app of ``workbench.create_app`` answers the scenarios' requests one at a time in this
process through :class:`bench.workbench_client.AsgiClient` (no socket, no HTTP parsing):
per request, the process's CPU time (``time.process_time``: the event loop and the
thread the route runs in) and the wall time, in milliseconds; reported p50 and mean per
scenario after ``--warm`` unmeasured requests. What the server's own HTTP layer (uvicorn)
adds is in ``bench.workbench``'s ``cpu ms/req``, not here. ``--profile NAME`` prints the
cProfile of that scenario's measured requests (top 60 by cumulative time, top 30 by own
time; sync work run inline
on the loop's thread so that one profiler sees it: use its CPU figures only with other
profiled ones).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.workbench import _reads, mint_token, signed_in
from bench.workbench_client import AsgiClient
from bench.workbench_server import _config


def measure(work: Path, *, url: str, n: int, warm: int, scenarios: list[str] | None,
            profile: str | None, dump: Path | None = None) -> dict[str, Any]:
    """p50 and mean CPU and wall ms per request of each scenario, in this process;
    ``dump``: every measured response (status, headers, body) written there as JSON
    lines, in request order (the same requests every time: to compare two versions of
    the app over one store)."""
    import pyarrow.parquet as pq

    from workbench import create_app

    accounts = pq.read_table(work / "staging" / "book" / "accounts.parquet",
                             columns=["account_id", "name"])
    ids = np.asarray(accounts.column("account_id").to_pylist(), dtype=object)
    names = np.asarray(accounts.column("name").to_pylist(), dtype=object)
    if profile:
        _inline_threads()
    app = create_app(_config(work, url))
    token = mint_token(url)
    api = AsgiClient(app, {"authorization": f"Bearer {token}"})
    page = signed_in(AsgiClient(app))
    out: dict[str, Any] = {}
    dumped = dump.open("w") if dump is not None else None
    try:
        reads = _reads(ids, names, rng=np.random.default_rng(3), n=n + warm)
        for name, (kind, requests) in reads.items():
            if scenarios and name not in scenarios:
                continue
            client = api if kind == "api" else page
            for request in requests[:warm]:
                assert request(client).status_code == 200, name
            cpu: list[float] = []
            wall: list[float] = []
            profiler = cProfile.Profile() if name == profile else None
            client.profiler = profiler
            for request in requests[warm:]:
                c0, w0 = time.process_time(), time.perf_counter()
                reply = request(client)
                cpu.append((time.process_time() - c0) * 1000.0)
                wall.append((time.perf_counter() - w0) * 1000.0)
                assert reply.status_code == 200, (name, reply.status_code, reply.text[:200])
                if dumped is not None:
                    headers = {k: v for k, v in reply.headers.items() if k != "set-cookie"}
                    dumped.write(json.dumps({"scenario": name, "status": reply.status_code,
                                             "headers": headers, "body": reply.text}) + "\n")
            out[name] = {"cpu_ms_p50": round(float(np.median(cpu)), 2),
                         "cpu_ms_mean": round(float(np.mean(cpu)), 2),
                         "wall_ms_p50": round(float(np.median(wall)), 2), "n": len(cpu)}
            client.profiler = None
            if profiler is not None:
                text = io.StringIO()
                stats = pstats.Stats(profiler, stream=text)
                stats.sort_stats("cumulative").print_stats(60)
                stats.sort_stats("tottime").print_stats(30)
                out[name]["profile"] = text.getvalue()
    finally:
        if dumped is not None:
            dumped.close()
        api.close()
        page.close()
        app.state.wb.close()
    return out


def _inline_threads() -> None:
    """Run what the app sends to worker threads inline on the event loop's thread, so that
    one profiler sees all of a request (the thread hops' own cost is then not measured:
    CPU figures of a profiled run are not comparable with others)."""
    import anyio.to_thread

    async def inline(func: Any, *args: Any, **_: Any) -> Any:
        return func(*args)

    anyio.to_thread.run_sync = inline  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--store-url", default=None)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--scenario", action="append", default=None)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--dump", type=Path, default=None,
                        help="Write every measured response here (JSON lines).")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    url = args.store_url or f"sqlite:///{work / 'worklist.db'}"
    load = round(os.getloadavg()[0], 2)
    results = measure(work, url=url, n=args.requests, warm=args.warm,
                      scenarios=args.scenario, profile=args.profile, dump=args.dump)
    out = {"load_before": load, "load_after": round(os.getloadavg()[0], 2),
           "results": results}
    for r in results.values():
        if "profile" in r:
            print(r["profile"])
    print(f"in process, {args.requests} requests per scenario; load {out['load_before']} "
          f"-> {out['load_after']}")
    print(f"{'scenario':<20} {'cpu ms p50':>10} {'cpu mean':>9} {'wall p50':>9}")
    for name, r in results.items():
        print(f"{name:<20} {r['cpu_ms_p50']:>10.2f} {r['cpu_ms_mean']:>9.2f} "
              f"{r['wall_ms_p50']:>9.2f}")
    if args.json:
        args.json.write_text(json.dumps(
            {**out, "results": {k: {kk: vv for kk, vv in v.items() if kk != "profile"}
                                for k, v in results.items()}}, indent=2))
    return out


if __name__ == "__main__":
    main()
