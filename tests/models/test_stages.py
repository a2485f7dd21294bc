"""The stage budget (models.stages): repeated stages accumulate, nested stages each count
their own time, and a stage's sampled peak sees memory it allocated and freed."""

from __future__ import annotations

import mmap
import time

import numpy as np

from models.stages import StageBudget


def test_stages_accumulate_and_see_their_own_peak() -> None:
    budget = StageBudget(sample_seconds=0.005)
    with budget:
        for _ in range(2):
            with budget.stage("a"):
                time.sleep(0.02)
        with budget.stage("b"):
            base = budget.figures[-1].rss_peak_mb
            # 40 MB of a fresh anonymous mapping, touched: the resident set must grow by it
            # (an allocator may serve a heap block from pages already resident, as it did
            # once in CI after the suite's earlier tests).
            block = mmap.mmap(-1, 40 * 2**20)
            np.frombuffer(block, dtype=np.uint8)[:] = 1
            time.sleep(0.03)
            # The sampler thread may be starved on a loaded machine: hold the block until it
            # has looked (at most 5 s; a sampler that never sees it fails below).
            deadline = time.monotonic() + 5
            while budget.figures[-1].rss_peak_mb < base + 35 and time.monotonic() < deadline:
                time.sleep(0.01)
            block.close()
    a, b = budget.figures
    assert (a.name, a.calls, b.name, b.calls) == ("a", 2, "b", 1)
    assert a.seconds >= 0.04 and b.seconds >= 0.03
    assert b.rss_peak_mb >= base + 35  # freed before the stage ended, still its peak
    assert b.process_peak_mb >= b.rss_peak_mb - 1
    assert budget.metrics()["stage.a.seconds"] == round(a.seconds, 3)
    assert [line.split()[0] for line in budget.lines()] == ["a", "b"]


def test_the_title_total_counts_every_stage_of_the_retrain() -> None:
    """The printed total is the sum of the retrain's stages, the last ones (``period_spread``
    and ``offline_rows``, run after registration) included."""
    from models.stages import TOP_LEVEL, title_line

    budget = StageBudget(sample_seconds=0.005)
    with budget:
        for name in ("mlflow", "period_spread", "offline_rows"):
            with budget.stage(name):
                time.sleep(0.05)
    total = float(title_line(budget).split("(")[1].split(" s wall")[0])
    assert total == round(sum(f.seconds for f in budget.figures), 1) and total >= 0.1
    assert TOP_LEVEL[-2:] == ("period_spread", "offline_rows")
