"""Fuzzing what we expose: every operation of the OpenAPI document, with generated requests (schemathesis),
against a real stack of its own (embedded broker, worker, sink, ingress over HTTP) — never a 5xx, and never
a request left hanging.

Each operation is called as an institution (the HIS's key), an administrator and a reviewer, so the
generated bodies reach the validation and the engine behind each route's authentication.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from services.stack import Stack
from tests.conftest import start_stack

pytestmark = pytest.mark.e2e

KEYS = ("dev-key-h1", "dev-admin-key", "dev-reviewer-key")
# Streams that never end (SSE) and the Prometheus page are not request/response operations.
SKIPPED = ("/dashboard/stream", "/metrics")


def _operations() -> list[Any]:
    """The operations of the OpenAPI document the ingress serves (built in-process: the same document)."""
    from services.common.settings import load_settings
    from services.ingress.app import create_app

    schema = schemathesis.openapi.from_dict(create_app(load_settings({})).openapi())
    return [op for op in (result.ok() for result in schema.get_all_operations()) if op.path not in SKIPPED]


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Stack]:
    """A stack of its own: the generated requests include the documented examples, e.g. suspending
    institution H1 for March 2026, which would change what other tests' events get."""
    stack = start_stack("fuzz")
    yield stack
    stack.stop()


@pytest.mark.parametrize("operation", _operations(), ids=lambda op: op.label)
def test_no_generated_request_gets_a_server_error(fuzzed: Stack, operation: Any) -> None:
    stack = fuzzed

    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(max_examples=10, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def run(case: Any) -> None:
        for key in KEYS:
            # Answered — a decision, a timeout within the budget, or a 4xx naming the field — never a 5xx
            # and never a hang (the client gives up after 30 s).
            case.call_and_validate(base_url=stack.url, headers={"X-API-Key": key}, checks=[not_a_server_error],
                                   timeout=30)

    run()
