"""The nightly's score-step imports on a thread beside the ingest (``pipelines.warm``)."""

from __future__ import annotations

import subprocess
import sys

from pipelines.warm import SCORING_MODULES, import_on_thread


def test_every_prefetched_module_exists_and_ends_up_imported() -> None:
    # A fresh interpreter: the list names modules the score step imports; a renamed one
    # would be skipped silently by the thread, so each must import by its name.
    code = ("import sys; from pipelines.warm import SCORING_MODULES, import_on_thread; "
            "import_on_thread().join(); "
            "print(','.join(m for m in SCORING_MODULES if m not in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
    assert len(SCORING_MODULES) == len(set(SCORING_MODULES))


def test_a_module_that_fails_to_import_stops_nothing() -> None:
    # the failing name first: the ones after it are still imported, nothing is raised
    sys.modules.pop("tabnanny", None)
    thread = import_on_thread(("delinq_no_such_module", "tabnanny"))
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert "tabnanny" in sys.modules
