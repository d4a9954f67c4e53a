"""Twilio's error codes as data: every code the issue names, one action each, in words."""

from __future__ import annotations

import pytest

from app.twilio.error_catalog import CATALOG, ErrorAction, action_for, describe
from app.twilio.errors import TwilioApiError

REQUIRED = [20003, 20429, 20503, 21211, 21408, 21606, 21610, 21611, 21614, 21635]
REQUIRED += [*range(30001, 30009), 30022, 30032, 30034, 30450, 30453, 63016, 63017]


@pytest.mark.parametrize("code", REQUIRED)
def test_every_required_code_is_in_the_catalog(code: int) -> None:
    entry = CATALOG[code]
    assert entry.code == code and entry.title and entry.meaning
    assert isinstance(entry.action, ErrorAction)


@pytest.mark.parametrize(
    ("codes", "action"),
    [
        ([21611, 30001, 30022, 63017, 20429], ErrorAction.RETRY_SLOWER),
        ([20503, 30008], ErrorAction.RETRY),
        ([30450, 30453], ErrorAction.BACK_OFF_NUMBER),
        ([21211, 21614, 21635, 30005, 30006], ErrorAction.SUPPRESS_RECIPIENT),
        ([21610], ErrorAction.OPT_OUT),
        ([20003, 21408, 21606, 30032, 30034], ErrorAction.PAUSE_DESTINATION),
        ([21617, 30007, 63016], ErrorAction.FAIL),
    ],
)
def test_actions(codes: list[int], action: ErrorAction) -> None:
    assert {code: action_for(code) for code in codes} == dict.fromkeys(codes, action)


def test_only_21610_records_an_opt_out() -> None:
    # The suppression it adds is labelled twilio_21610: no other code may reach it.
    assert [c for c, e in CATALOG.items() if e.action is ErrorAction.OPT_OUT] == [21610]


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (429, ErrorAction.RETRY_SLOWER),
        (502, ErrorAction.RETRY),
        (400, ErrorAction.FAIL),
        (None, ErrorAction.FAIL),
    ],
)
def test_a_code_not_in_the_catalog_is_judged_by_its_status(
    status: int | None, action: ErrorAction
) -> None:
    assert action_for(99999, status) is action
    assert action_for(None, status) is action


def test_the_catalog_wins_over_the_status() -> None:
    # 21611 comes as a 400: the message was not created, a retry later is safe and right.
    assert TwilioApiError(400, 21611, "queue full").retryable
    # 20003 as a 5xx would still be about the credentials.
    assert not TwilioApiError(500, 20003, "Authenticate").retryable


def test_describe_in_words() -> None:
    assert describe(30006) == (
        "Landline or unreachable carrier: the number cannot take texts (a landline)"
    )
    assert (
        describe("21610") == "Attempt to send to unsubscribed recipient: the recipient texted STOP"
    )
    assert describe("") is None and describe(None) is None and describe(12345) is None
