"""Frequency caps across destinations: the file's `caps:` per category, checked and counted
in the admission script (exact under concurrency), released when a send fails for good."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.destinations import ConfigError, load_destinations
from tests.conftest import RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio
from tests.test_check_config import RENDERER, write
from tests.test_check_config import problems_of as file_problems

Start = Callable[..., RunningService]

THREE_MARKETING = """
caps:
  marketing:
    - {texts: 3, per: 1d}
    - {texts: 10, per: 7d}
  transactional: exempt
destinations:
  - {id: promo-a, category: marketing, body: a, from: "+15005550006"}
  - {id: promo-b, category: marketing, body: b, from: "+15005550006"}
  - {id: promo-c, category: marketing, body: c, from: "+15005550006"}
  - {id: receipt, category: transactional, body: r, from: "+15005550006"}
"""


def deliveries(service: RunningService, uuid: str) -> list[dict[str, Any]]:
    response = service.post_events(posthog_webhook(uuid=uuid))
    assert response.status_code == 202, response.text
    found: list[dict[str, Any]] = response.json()["results"][0]["deliveries"]
    return found


def test_over_a_cap_is_capped_with_the_cap_and_when_it_frees(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(THREE_MARKETING)
    first = deliveries(service, "e1")  # a, b, c and the receipt
    assert [d["decision"] for d in first] == ["queued"] * 4
    admitted = service.delivery(first[0]["delivery_id"])["created_at"]
    second = deliveries(service, "e2")
    assert [d["decision"] for d in second] == ["capped", "capped", "capped", "queued"]
    frees = datetime.fromisoformat(admitted) + timedelta(days=1)
    assert second[0]["detail"] == (
        "frequency cap of category 'marketing', 3 per 1d per recipient: 3 texts in the last "
        f"1d; the next one may go at {frees.isoformat(timespec='milliseconds')[:-6]}Z"
    )
    record = service.delivery(second[0]["delivery_id"])
    assert (record["status"], record["reason"]) == ("skipped", "capped")
    with service.admin() as admin:
        trace = admin.post(
            "/v1/destinations/promo-a/test", json={"event": posthog_webhook(uuid="e3")}
        ).json()
    assert (trace["decision"], trace["detail"]) == ("capped", second[0]["detail"])
    fake_twilio.wait_for_requests(5)


def test_caps_count_each_recipient_apart(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service(THREE_MARKETING)
    for phone in ("+14155552671", "+14155552672"):
        response = service.post_events(posthog_webhook(uuid=f"e-{phone}", phone=phone))
        decisions = [d["decision"] for d in response.json()["results"][0]["deliveries"]]
        assert decisions == ["queued"] * 4


def test_two_hundred_concurrent_events_over_three_destinations_never_pass_the_cap(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(
        THREE_MARKETING.replace("  transactional: exempt\n", "").replace(
            '  - {id: receipt, category: transactional, body: r, from: "+15005550006"}\n', ""
        )
    )

    def one(i: int) -> list[str]:
        return [d["decision"] for d in deliveries(service, f"burst-{i}")]

    with ThreadPoolExecutor(max_workers=32) as pool:
        decisions = [d for answer in pool.map(one, range(200)) for d in answer]
    assert len(decisions) == 600
    assert decisions.count("queued") == 3 and decisions.count("capped") == 597
    fake_twilio.wait_for_requests(3)
    time.sleep(1.0)
    assert len(fake_twilio.message_requests) == 3  # counted where the texts arrive


def test_a_permanent_failure_releases_its_place(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(
        """
caps: {default: [{texts: 1, per: 1h}]}
destinations: [{id: w, body: hi, from: "+15005550006"}]
"""
    )
    fake_twilio.enqueue(FakeTwilio.fail_with(400, 21617, "body too long"))  # FAIL: final
    [failed] = deliveries(service, "e1")
    service.wait_for_status(failed["delivery_id"], "failed")
    [next_one] = deliveries(service, "e2")
    assert next_one["decision"] == "queued"  # the failed text did not count
    service.wait_for_status(next_one["delivery_id"], "sent")
    [capped] = deliveries(service, "e3")
    assert capped["decision"] == "capped"


def test_caps_reload_with_the_file(start_service: Start, fake_twilio: FakeTwilio) -> None:
    service = start_service('destinations: [{id: w, body: hi, from: "+15005550006"}]')
    assert [d["decision"] for d in deliveries(service, "e1")] == ["queued"]
    path = Path(service.settings.destinations_file)
    path.write_text(
        "caps: {default: [{texts: 1, per: 1d}]}\n"
        'destinations: [{id: w, body: hi, from: "+15005550006"}]\n'
    )
    with service.admin() as admin:
        admin.post("/v1/destinations/reload").raise_for_status()
    # The text before the reload was not counted (no caps then): one more may go.
    assert [d["decision"] for d in deliveries(service, "e2")] == ["queued"]
    assert [d["decision"] for d in deliveries(service, "e3")] == ["capped"]


def test_caps_in_the_file_are_validated(tmp_path: Path) -> None:
    problems = file_problems(
        tmp_path,
        """
        caps:
          marketing:
            - {texts: 0, per: 1d}
            - {texts: 3, per: fortnight}
          alerts: sometimes
          "bad name!": exempt
        destinations:
          - {id: a, category: marketing, body: a, from: "+15005550006"}
          - {id: b, category: promo, body: b, from: "+15005550006"}
        """,
    )
    assert problems == [
        ":4: caps.marketing.0.texts: Input should be greater than or equal to 1",
        ":5: caps.marketing.1.per: expected a duration such as 30, 30s, 15m, 2h, 7d or 1y, "
        "got 'fortnight'",
        ":6: caps.alerts: must be a list of {texts, per} or 'exempt', got text",
        ":7: caps.bad name!: a category name is 1-64 letters, digits, '_', '.' or '-'",
    ]


def test_a_category_missing_from_caps_is_refused(tmp_path: Path) -> None:
    problems = file_problems(
        tmp_path,
        """
        caps: {marketing: [{texts: 3, per: 1d}], transactional: exempt}
        destinations:
          - {id: a, category: marketing, body: a, from: "+15005550006"}
          - {id: b, category: promo, body: b, from: "+15005550006"}
        """,
    )
    assert problems == [
        ":5: destination 'b': category: 'promo' is not in caps (give it its caps there, or "
        "'exempt'); caps has marketing, transactional"
    ]


@pytest.mark.parametrize("per", ["30s", "2y"])
def test_a_cap_window_is_a_minute_to_a_year(tmp_path: Path, per: str) -> None:
    path = write(tmp_path, f"caps: {{default: [{{texts: 1, per: {per}}}]}}\ndestinations: []\n")
    with pytest.raises(ConfigError):
        load_destinations(path, RENDERER)
