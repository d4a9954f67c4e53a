"""Storage failures reach callers as the store's own errors, answered 503 in one place."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis

from app.store import keys
from tests.conftest import SIGNUP_DESTINATION, RunningService

Start = Callable[..., RunningService]


def test_a_command_redis_refuses_is_503_not_500(
    start_service: Start, redis_client: redis.Redis
) -> None:
    service = start_service(SIGNUP_DESTINATION, run_worker=False)
    redis_client.set(keys.SUPPRESSIONS, "not a hash")  # WRONGTYPE for every list read
    with service.admin() as admin:
        response = admin.get("/v1/suppressions")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "error": "unavailable",
        "detail": "storage is unavailable, retry later",
    }


def test_readiness_asks_the_store(start_service: Start) -> None:
    service = start_service(SIGNUP_DESTINATION, run_worker=False, redis_url="redis://127.0.0.1:1/0")
    with httpx.Client(base_url=service.base_url) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable" and "Redis" in response.json()["detail"]
