"""The served OpenAPI description is the contract: schemathesis generates requests for
every operation from `/openapi.json` (with the tokens) and checks each answer — no server
error, and status, content type and body all as described."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from bench.procs import free_port
from tests.conftest import (
    ADMIN_TOKEN,
    INGEST_TOKEN,
    REDIS_URL,
    SIGNUP_DESTINATION,
    service_settings,
    write_destinations,
)
from tests.fake_twilio import FakeTwilio

# Per operation, valid and invalid requests mixed: ~20 s for all of them on a quiet machine.
MAX_EXAMPLES = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def served_description(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service (real lifespan, Redis, fake Twilio) for the whole module; its URL."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    twilio = FakeTwilio()
    twilio.start()
    destinations = write_destinations(Path(tmp_path_factory.mktemp("contract")), SIGNUP_DESTINATION)
    app = create_app(service_settings(destinations, twilio_base_url=twilio.base_url))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "service did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)
    twilio.stop()
    client.flushdb()
    client.close()


def keeps_its_contract(operation: APIOperation, token: str) -> None:
    """Valid and invalid requests for one operation; raise on the first broken answer.

    Plain hypothesis over schemathesis' strategies: its pytest plugin does not run under
    pytest 9. Bounded and derandomized: CI fails on the code, not on luck.
    """

    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
    )
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answer_keeps_it(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    answer_keeps_it()


def test_every_operation_keeps_its_contract(served_description: str) -> None:
    contract = schemathesis.openapi.from_url(f"{served_description}/openapi.json")
    operations = [result.ok() for result in contract.get_all_operations()]
    assert len(operations) >= 19  # every operation of the description, none skipped
    broken: list[str] = []
    for operation in operations:
        token = INGEST_TOKEN if operation.path == "/v1/events" else ADMIN_TOKEN
        try:
            keeps_its_contract(operation, token)
        # Every operation's failures, not just the first (schemathesis' FailureGroup is a
        # BaseExceptionGroup).
        except (Exception, BaseExceptionGroup) as exc:
            broken.append(f"{operation.label}: {exc}")
    assert not broken, "\n\n".join(broken)
