from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import Settings, SettingsError

SID = "AC" + "0" * 32
KEY = "SK" + "1" * 32


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_no_credentials_means_test_mode() -> None:
    assert make().global_test_mode is True


def test_credentials_mean_live_unless_told() -> None:
    assert make(TWILIO_ACCOUNT_SID=SID, TWILIO_AUTH_TOKEN="t").global_test_mode is False
    live = make(TWILIO_ACCOUNT_SID=SID, TWILIO_AUTH_TOKEN="t", test_mode=True)
    assert live.global_test_mode is True


def test_api_key_credentials() -> None:
    settings = make(TWILIO_ACCOUNT_SID=SID, TWILIO_API_KEY=KEY, TWILIO_API_SECRET="s")
    assert settings.has_twilio_credentials


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "t"}, "TWILIO_ACCOUNT_SID must be"),
        (
            {"TWILIO_ACCOUNT_SID": SID, "TWILIO_API_KEY": "KEY1", "TWILIO_API_SECRET": "s"},
            "TWILIO_API_KEY must be",
        ),
        ({"TWILIO_ACCOUNT_SID": SID, "TWILIO_API_KEY": KEY}, "go together"),
        ({"TWILIO_AUTH_TOKEN": "t"}, "TWILIO_ACCOUNT_SID is required"),
        ({"TWILIO_ACCOUNT_SID": SID}, "needs TWILIO_AUTH_TOKEN"),
        ({"test_mode": False}, "SMS_TEST_MODE=false needs"),
        ({"default_region": "USA"}, "two-letter"),
        ({"twilio_base_url": "ftp://x"}, "http"),
    ],
)
def test_invalid_settings(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make(**values)


def test_secrets_never_printed() -> None:
    settings = make(TWILIO_ACCOUNT_SID=SID, TWILIO_AUTH_TOKEN="very-secret", ingest_token="tok-1")
    assert "very-secret" not in repr(settings) and "tok-1" not in repr(settings)


def test_serving_requires_tokens_unless_opened() -> None:
    with pytest.raises(SettingsError, match="SMS_INGEST_TOKEN"):
        make(admin_token="a").check_serving()
    with pytest.raises(SettingsError, match="SMS_ADMIN_TOKEN"):
        make(ingest_token="i").check_serving()
    make(ingest_auth="none", admin_auth="none").check_serving()


def test_durations_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_DEDUPE_TTL", "2d")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "t")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.dedupe_ttl == 172_800
    assert settings.twilio_account_sid == SID


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # docker compose passes `${VAR:-}` as an empty string.
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "SMS_TEST_MODE", "SMS_PUBLIC_BASE_URL"):
        monkeypatch.setenv(name, "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.twilio_account_sid is None and settings.global_test_mode is True


def test_reclaim_idle_is_derived_from_the_twilio_deadline() -> None:
    assert make().reclaim_idle == 60  # 10 s deadline + 2 s: the 60 s default holds
    assert make(twilio_timeout=90).reclaim_idle == 92
    assert make(twilio_timeout=0.5, reclaim_idle="3s").reclaim_idle == 3


@pytest.mark.parametrize(
    ("values", "least"),
    [({"reclaim_idle": "30s", "twilio_timeout": 40}, 42), ({"reclaim_idle": 11}, 12)],
)
def test_reclaim_shorter_than_a_send_is_refused(values: dict[str, Any], least: int) -> None:
    with pytest.raises(ValidationError, match=f"SMS_RECLAIM_IDLE to {least}s or more"):
        make(**values)


def test_reclaim_rule_applies_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_TWILIO_TIMEOUT", "120")
    assert Settings(_env_file=None).reclaim_idle == 122  # type: ignore[call-arg]
    monkeypatch.setenv("SMS_RECLAIM_IDLE", "2m")
    with pytest.raises(ValidationError, match="SMS_RECLAIM_IDLE=120s is shorter"):
        Settings(_env_file=None)  # type: ignore[call-arg]
