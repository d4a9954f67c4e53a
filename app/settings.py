"""Every setting the service reads, in one place.

Service settings use the ``SMS_`` prefix; Twilio credentials use Twilio's own variable
names so that an operator's existing environment works as it is.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.durations import Seconds
from app.guard import DEFAULT_PER_BLOCK, DEFAULT_PER_COUNTRY
from app.pipeline.quiet_hours import QuietHoursConfig, zone_named
from app.pipeline.recipients import parse_countries
from app.redis_url import parse_redis_url

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_API_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")
# What a worker does around a Twilio request while it holds a message: claim the record
# before, record the answer and acknowledge after (two Redis scripts, milliseconds on a
# healthy Redis; seconds leave room for a pause).
SEND_BOOKKEEPING_S = 2
DEFAULT_RECLAIM_IDLE_S = 60
# Kept between a pacing wait's end and the reclaim horizon, for the event loop's delays.
PACING_MARGIN_S = 5


class SettingsError(Exception):
    """The environment cannot run the service; the message says which variable and why."""


class Settings(BaseSettings):
    """Configuration from the environment (and a ``.env`` file, if present)."""

    # Empty variables count as unset: compose files pass `${VAR:-}` through.
    model_config = SettingsConfigDict(
        env_prefix="SMS_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    # --- HTTP ---------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    ingest_auth: Literal["bearer", "none"] = "bearer"
    ingest_token: SecretStr | None = None
    admin_auth: Literal["bearer", "none"] = "bearer"
    admin_token: SecretStr | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_batch: int = Field(default=1000, ge=1)
    public_base_url: str | None = None
    log_level: str = "INFO"
    # The CLI's other way in: a running service's API (with SMS_ADMIN_TOKEN) instead of Redis.
    api_url: str | None = None
    # Raw events kept in memory for the console's tester (personal data: 0 keeps none).
    recent_events: int = Field(default=1000, ge=0, le=100_000)
    # json | text; unset: text at a terminal, JSON everywhere else (app/logs.py).
    log_format: Literal["json", "text"] | None = None
    # Unset: GET /metrics is open (scrapers usually sit on a private network).
    metrics_token: SecretStr | None = None
    # Where `smsdest worker` serves GET /metrics (serve answers it on its API port).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # --- storage ------------------------------------------------------------------------
    # Unset: `smsdest serve` runs an embedded Redis persisting under `data_dir`. A
    # redis:// URL, or redis+sentinel://… for a master found through Sentinels
    # (app/redis_url.py; README, "Redis: replicas, Sentinel and failover").
    redis_url: str | None = None
    # Writes that answer a promise (ingest's 202, a send's intent, an opt-out) wait until
    # this many replicas have them (WAIT), at most redis_wait_timeout ms; else 503.
    redis_min_replicas: int = Field(default=0, ge=0, le=16)
    redis_wait_timeout: int = Field(default=1000, ge=1, le=4000)  # ms
    data_dir: Path = Path("data")
    dedupe_ttl: Seconds = Field(default=7 * 86_400, ge=1)
    delivery_retention: Seconds = Field(default=30 * 86_400, ge=60)
    # Skipped deliveries (throttled, opted out, invalid…) are most of a busy log and
    # matter for less long; capped at delivery_retention.
    skipped_retention: Seconds = Field(default=7 * 86_400, ge=60)

    # --- destinations -------------------------------------------------------------------
    destinations_file: Path = Path("destinations.yaml")
    templates_dir: Path = Path("templates")
    default_region: str = "US"
    # The SMS-pumping guard: only numbers of these countries are texted. PostHog project
    # keys are public (they ship in every web page), so anyone can set a person's phone to
    # a premium-rate number abroad and fire the event that texts it, on our bill. Unset:
    # SMS_DEFAULT_REGION's country only; "*" allows every country. Comma-separated.
    allowed_countries: str | None = None
    # A message not sent within this long after its time is `expired`, never sent late
    # (and Twilio is told, as ValidityPeriod). Unset: no limit.
    default_validity: Seconds | None = Field(default=None, ge=1)
    # Quiet hours for every destination that sets none, as JSON:
    # {"start": "21:00", "end": "08:00", "action": "defer"}. Unset: none.
    quiet_hours: QuietHoursConfig | None = None
    # The pumping guard's velocity limits (README, "Velocity"): first-time recipients an
    # hour per 1,000-number block and per country, for each destination (unless its
    # `velocity:` says otherwise) and across all of them. 0 turns one off.
    velocity_per_block: int = Field(default=DEFAULT_PER_BLOCK, ge=0)
    velocity_per_country: int = Field(default=DEFAULT_PER_COUNTRY, ge=0)
    # The recipient's zone when neither the template nor the number tells (IANA name).
    default_timezone: str = "UTC"
    # Where a destination's budget day ends (its midnight; IANA name): `over_budget` pauses
    # a destination until then. UTC by default: the day Twilio's usage records count in.
    budget_timezone: str = "UTC"
    # How long a delivery held for a paused destination waits before it is looked at again
    # (resuming releases them at once; a pause with an end releases them at its end).
    pause_recheck: float = Field(default=300.0, gt=0, le=86_400)
    # How often each `serve` checks whether another process reloaded the destinations
    # file (one Redis GET, off the hot path); 0 turns the check off.
    config_poll_interval: float = Field(default=2.0, ge=0)

    # --- sending ------------------------------------------------------------------------
    # None means "decide": test mode exactly when no Twilio credentials are configured.
    test_mode: bool | None = None
    twilio_base_url: str = "https://api.twilio.com"
    # The whole Twilio request, connection to last byte of the answer (a deadline).
    twilio_timeout: float = Field(default=10.0, gt=0)
    send_max_attempts: int = Field(default=5, ge=1, le=50)
    retry_base_delay: float = Field(default=1.0, ge=0)
    retry_max_delay: float = Field(default=300.0, ge=0)
    # The pace (segments per second) of senders missing from `senders:`; unset: by their
    # shape — a toll-free number 3, a short code 100, any other number or a Messaging
    # Service 1 (app/senders.py).
    sender_default_rate: float | None = Field(default=None, gt=0, le=10_000)
    # Twilio answers 429 (20429, safe to retry: we back off) past its account concurrency.
    worker_concurrency: int = Field(default=100, ge=1, le=1000)
    # Unset: derived from twilio_timeout (see `_check_reclaim_outlives_sends`).
    reclaim_idle: Seconds = Field(default=DEFAULT_RECLAIM_IDLE_S, ge=1)
    # How long Twilio's message list may lag behind a create: an attempt whose outcome is
    # unknown is looked up this long after it could last have reached Twilio (and sent
    # again only if it is not there). See README, "Exactly once".
    twilio_list_delay: float = Field(default=60.0, ge=0)
    # SIGTERM: how long in-flight sends get to finish; the rest are left `sending`, for the
    # resolver (another worker, or this one's next start).
    shutdown_grace: Seconds = Field(default=20, ge=0)
    # Reconciliation with Twilio (off in test mode): 0 turns it off.
    reconcile_interval: Seconds = Field(default=300, ge=0)
    reconcile_after: Seconds = Field(default=600, ge=0)
    reconcile_max_pages: int = Field(default=5, ge=1, le=100)

    twilio_account_sid: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_ACCOUNT_SID")
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_AUTH_TOKEN")
    )
    twilio_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_API_KEY")
    )
    twilio_api_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_API_SECRET")
    )

    @field_validator("default_region")
    @classmethod
    def _region_upper(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError("must be a two-letter region code such as US or GB")
        return value.upper()

    @field_validator("allowed_countries")
    @classmethod
    def _countries(cls, value: str | None) -> str | None:
        if value is not None:
            parse_countries(value.split(","))
        return value

    @field_validator("default_timezone", "budget_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if zone_named(value) is None:
            raise ValueError(f"{value!r} is not an IANA time zone (such as Europe/Paris)")
        return value

    @property
    def allowed_country_set(self) -> frozenset[str]:
        """SMS_ALLOWED_COUNTRIES as codes (``*``: all); unset: SMS_DEFAULT_REGION's."""
        if self.allowed_countries is None:
            return frozenset({self.default_region})
        return parse_countries(self.allowed_countries.split(","))

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_redis_url(value)  # a ValueError says what to write instead
        return value

    @model_validator(mode="after")
    def _check_replicas_exist(self) -> Settings:
        if self.redis_min_replicas and self.redis_url is None:
            raise ValueError(
                f"SMS_REDIS_MIN_REPLICAS={self.redis_min_replicas} needs SMS_REDIS_URL: the "
                "embedded Redis has no replicas (every write would wait for none and fail)"
            )
        return self

    @field_validator("public_base_url", "twilio_base_url", "api_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://", value):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _check_twilio_credentials(self) -> Settings:
        sid, key = self.twilio_account_sid, self.twilio_api_key
        if sid is not None and not _ACCOUNT_SID.match(sid):
            raise ValueError("TWILIO_ACCOUNT_SID must be 'AC' followed by 32 hex digits")
        if key is not None and not _API_KEY_SID.match(key):
            raise ValueError(
                "TWILIO_API_KEY must be an API Key SID: 'SK' followed by 32 hex digits"
            )
        if (key is None) != (self.twilio_api_secret is None):
            raise ValueError(
                "TWILIO_API_KEY and TWILIO_API_SECRET go together: set both or neither"
            )
        has_secret = self.twilio_auth_token is not None or key is not None
        if sid is None and has_secret:
            raise ValueError(
                "TWILIO_ACCOUNT_SID is required with TWILIO_AUTH_TOKEN or TWILIO_API_KEY"
            )
        if sid is not None and not has_secret:
            raise ValueError(
                "TWILIO_ACCOUNT_SID needs TWILIO_AUTH_TOKEN or TWILIO_API_KEY + SECRET"
            )
        if self.test_mode is False and sid is None:
            raise ValueError("SMS_TEST_MODE=false needs Twilio credentials (TWILIO_ACCOUNT_SID …)")
        return self

    @model_validator(mode="after")
    def _check_reclaim_outlives_sends(self) -> Settings:
        """A worker takes over a message left unacknowledged for `reclaim_idle`: that must
        be longer than a live worker can hold one (its request's deadline plus the record
        keeping around it), or a message still in flight at Twilio is sent a second time."""
        longest = math.ceil(self.twilio_timeout) + SEND_BOOKKEEPING_S
        if "reclaim_idle" not in self.model_fields_set:
            self.reclaim_idle = max(DEFAULT_RECLAIM_IDLE_S, longest)
        elif self.reclaim_idle < longest:
            raise ValueError(
                f"SMS_RECLAIM_IDLE={self.reclaim_idle}s is shorter than a send can stay in "
                f"flight (SMS_TWILIO_TIMEOUT={self.twilio_timeout:g}s + "
                f"{SEND_BOOKKEEPING_S}s to record it): another worker would send it again. "
                f"Set SMS_RECLAIM_IDLE to {longest}s or more, lower SMS_TWILIO_TIMEOUT, or "
                "leave SMS_RECLAIM_IDLE unset to derive it"
            )
        return self

    @property
    def pacing_hold_s(self) -> float:
        """How long a worker may wait for its sender's turn while it holds the message's
        stream entry: what SMS_RECLAIM_IDLE leaves after a send's own deadline and record
        keeping, less a margin (another worker must never take over a message still
        waiting). A longer wait parks the message in the delayed set until its turn."""
        busy = math.ceil(self.twilio_timeout) + SEND_BOOKKEEPING_S + PACING_MARGIN_S
        return float(max(0, self.reclaim_idle - busy))

    @property
    def has_twilio_credentials(self) -> bool:
        return self.twilio_account_sid is not None

    @property
    def global_test_mode(self) -> bool:
        """True when no message may reach Twilio, whatever a destination's own mode says."""
        return self.test_mode if self.test_mode is not None else not self.has_twilio_credentials

    def check_serving(self) -> None:
        """Refuse to serve with an open API that the operator did not explicitly ask for."""
        if self.ingest_auth == "bearer" and not self.ingest_token:
            raise SettingsError(
                "SMS_INGEST_TOKEN is required (or set SMS_INGEST_AUTH=none to accept "
                "unauthenticated events)"
            )
        if self.admin_auth == "bearer" and not self.admin_token:
            raise SettingsError(
                "SMS_ADMIN_TOKEN is required (or set SMS_ADMIN_AUTH=none to open the admin API)"
            )
