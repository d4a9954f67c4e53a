"""The fake Twilio's faults the reliability rows rely on, checked on their own."""

from __future__ import annotations

import httpx
import pytest

from tests.fake_twilio import DEFAULT_ACCOUNT_SID, FakeTwilio, ScriptedResponse

CREATE = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
FORM = {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}


@pytest.mark.parametrize("accept", [True, False])
def test_a_dropped_connection_creates_the_message_only_when_accepted(accept: bool) -> None:
    with FakeTwilio() as fake:
        fake.enqueue(ScriptedResponse(201, accept=accept, drop=True))
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(fake.base_url + CREATE, data=FORM, auth=(DEFAULT_ACCOUNT_SID, "t"))
        assert [m["body"] for m in fake.messages.values()] == (["hi"] if accept else [])
        # The next request gets the default answer again.
        created = httpx.post(fake.base_url + CREATE, data=FORM, auth=(DEFAULT_ACCOUNT_SID, "t"))
        assert created.status_code == 201
        assert len(fake.messages) == (2 if accept else 1)
