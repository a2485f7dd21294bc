"""Schemathesis over every route of the API with a valid (admin) token: a few hundred
generated requests (about 20 valid and 8 invalid per operation), no 5xx, and no status
code, content type or body that ``/openapi.json`` does not document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from workbench.roles import Role

from .conftest import Bench, Scored, make_bench

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
POSITIVE_EXAMPLES = 20
NEGATIVE_EXAMPLES = 8


@pytest.fixture(scope="module")
def fuzz_bench(scored: Scored, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    bench = make_bench(scored, Path(tmp_path_factory.mktemp("fuzz")) / "state")
    yield bench
    bench.app.state.wb.close()  # type: ignore[attr-defined]


def test_no_server_error_and_no_undocumented_response(fuzz_bench: Bench) -> None:
    # The Python API rather than schemathesis' pytest plugin: the app needs the session's
    # scored store, and the plugin's fixture-based loader does not run on this pytest.
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_bench.app)
    headers = {"Authorization": f"Bearer {fuzz_bench.tokens[Role.ADMIN]}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {(p, m) for p, ops in fuzz_bench.client().get("/openapi.json").json()[
        "paths"].items() for m in ops}
    assert {(op.path, op.method.lower()) for op in operations} == documented
    ran = 0
    for operation in operations:
        ran += _fuzz(operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES, headers)
        ran += _fuzz(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, headers)
    assert ran >= 300, ran  # a few hundred requests in all


def _fuzz(operation: object, mode: GenerationMode, examples: int,
          headers: dict[str, str]) -> int:
    """Run up to ``examples`` generated requests of ``operation``; how many ran."""
    seen: list[int] = []

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))  # type: ignore[attr-defined]
    def call(case: object) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)  # type: ignore[attr-defined]
        seen.append(1)

    try:
        call()
    except Unsatisfiable:
        # No invalid request exists for an operation without inputs (GET /api/me).
        assert mode is GenerationMode.NEGATIVE and not seen, operation
    return len(seen)
