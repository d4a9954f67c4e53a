"""Hot reload of the destinations file through the real service: the API, the generation
every process follows, a bad file refused with the running configuration kept, and queued
deliveries sent as they were admitted."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.services import Services
from tests.conftest import SIGNUP_DESTINATION, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]

NEW_BODY = """
destinations:
  - id: welcome
    events: [signed up]
    body: "Hello again {{ person.properties.name }}"
    from: "+15005550007"
  - id: second
    events: [upgraded]
    body: "Thanks"
    from: "+15005550006"
"""


def rewrite(service: RunningService, yaml_text: str) -> Path:
    path = service.settings.destinations_file
    path.write_text(textwrap.dedent(yaml_text))
    return path


def services_of(service: RunningService) -> Services:
    app: Any = service.server.config.app
    services: Services = app.state.services
    return services


def first_delivery(service: RunningService, uuid: str, event: str = "signed up") -> dict[str, str]:
    answer = service.post_events(posthog_webhook(uuid=uuid, event=event)).json()
    delivery: dict[str, str] = answer["results"][0]["deliveries"][0]
    return delivery


def test_reload_swaps_the_destinations(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(SIGNUP_DESTINATION)
    before = first_delivery(service, "0190e4c6-0000-7000-8000-00000000a001")
    assert service.wait_for_status(before["delivery_id"], "sent")["body"] == "Welcome Ada!"

    rewrite(service, NEW_BODY)
    with service.admin() as admin:
        answer = admin.post("/v1/destinations/reload")
        assert answer.status_code == 200, answer.text
        assert answer.json()["destinations"] == 2
        assert answer.json()["generation"] == 1
        listed = admin.get("/v1/destinations").json()["items"]
    assert [d["id"] for d in listed] == ["welcome", "second"]

    after = first_delivery(service, "0190e4c6-0000-7000-8000-00000000a002")
    record = service.wait_for_status(after["delivery_id"], "sent")
    assert record["body"] == "Hello again Ada"
    assert record["from"] == "+15005550007"
    assert (
        first_delivery(service, "0190e4c6-0000-7000-8000-00000000a003", "upgraded")["decision"]
        == "queued"
    )


def test_a_bad_file_keeps_the_running_configuration(start_service: Start) -> None:
    service = start_service(SIGNUP_DESTINATION)
    rewrite(service, NEW_BODY.replace('body: "Thanks"', 'body: "{{ unclosed"'))
    with service.admin() as admin:
        answer = admin.post("/v1/destinations/reload")
        unauthenticated = service.client(None).post("/v1/destinations/reload")
    assert unauthenticated.status_code == 401
    assert answer.status_code == 422
    error = answer.json()
    assert error["error"] == "invalid_destinations"
    assert "running configuration is kept" in error["detail"]
    assert "destinations.yaml:" in error["detail"] and "second" in error["detail"]
    reloader = services_of(service).reloader
    assert reloader is not None and reloader.last_error is not None
    assert "second" in reloader.last_error and reloader.generation == 0

    # Still the old file: the old body, and no "upgraded" destination.
    delivery = first_delivery(service, "0190e4c6-0000-7000-8000-00000000b001")
    assert service.wait_for_status(delivery["delivery_id"], "sent")["body"] == "Welcome Ada!"

    rewrite(service, NEW_BODY)  # fixed: the error clears
    with service.admin() as admin:
        assert admin.post("/v1/destinations/reload").status_code == 200
    assert reloader.last_error is None


def test_every_process_follows_and_queued_deliveries_keep_their_admission(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    # Two processes over one Redis: an API without a worker, and one with.
    api = start_service(SIGNUP_DESTINATION, run_worker=False, config_poll_interval=0.05)
    queued = first_delivery(api, "0190e4c6-0000-7000-8000-00000000c001")
    assert queued["decision"] == "queued"
    # The worker's process reloads; the API process follows through the generation.
    worker = start_service(SIGNUP_DESTINATION, config_poll_interval=0.05)
    rewrite(worker, NEW_BODY)
    with worker.admin() as admin:
        assert admin.post("/v1/destinations/reload").status_code == 200
    api_reloader = services_of(api).reloader
    assert api_reloader is not None
    deadline = time.monotonic() + 5
    while api_reloader.generation != 1:
        assert time.monotonic() < deadline, "the API process did not follow the reload"
        time.sleep(0.02)
    # Admitted before the reload: sent with the body and sender it was admitted with.
    sent = worker.wait_for_status(queued["delivery_id"], "sent")
    assert sent["body"] == "Welcome Ada!"
    [request] = fake_twilio.wait_for_requests(1)
    assert request.form["Body"] == "Welcome Ada!" and request.form["From"] == "+15005550006"
    # Admitted after: the new file, in the process that did not reload itself.
    later = first_delivery(api, "0190e4c6-0000-7000-8000-00000000c002")
    assert worker.wait_for_status(later["delivery_id"], "sent")["body"] == "Hello again Ada"
