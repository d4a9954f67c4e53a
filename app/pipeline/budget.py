"""A destination's daily budget: what one message costs it, and which budget day it is.

Pure arithmetic; the store counts the spend atomically at admission (`destination_gate.lua`).
Money is counted in millionths of the account's currency (integers: Redis' HINCRBY, and no
float drift over a day of additions).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.pipeline.recipients import ALL_COUNTRIES, country_of

MICROS = 1_000_000  # money is counted in millionths

Price = Annotated[Decimal, Field(ge=0, le=100, decimal_places=6)]


class BudgetConfig(BaseModel):
    """`budget:` of a destination: at most `segments_per_day` segments and/or `per_day`
    money a day (priced per segment by `prices`, by the recipient's country; ``"*"``: any
    other country; a country the table lacks, without ``"*"``, costs its highest price)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segments_per_day: int | None = Field(default=None, ge=1, le=1_000_000_000)
    per_day: Decimal | None = Field(default=None, gt=0, le=1_000_000, decimal_places=6)
    prices: dict[str, Price] | None = None

    @field_validator("prices")
    @classmethod
    def _countries(cls, value: dict[str, Decimal] | None) -> dict[str, Decimal] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("list at least one country's price per segment (or '*')")
        for code in value:
            if code != ALL_COUNTRIES and not (len(code) == 2 and code.isalpha() and code.isupper()):
                raise ValueError(f"{code!r} is not an ISO country code such as US (or '*')")
        return value

    @model_validator(mode="after")
    def _something_to_count(self) -> BudgetConfig:
        if self.segments_per_day is None and self.per_day is None:
            raise ValueError("set 'segments_per_day', 'per_day' (with 'prices') or both")
        if self.per_day is not None and not self.prices:
            raise ValueError("'per_day' is money: set 'prices' (per segment, by country)")
        return self

    def cost_micros(self, recipient: str, segments: int) -> int:
        """What `segments` segments to `recipient` cost, in millionths (0 without prices)."""
        if not self.prices:
            return 0
        return int(_price(self, country_of(recipient)) * MICROS) * segments

    def describe(self) -> str:
        """The budget in words: ``1000 segments or 5.00 a day``."""
        parts = []
        if self.segments_per_day is not None:
            parts.append(f"{self.segments_per_day} segments")
        if self.per_day is not None:
            parts.append(f"{self.per_day} (money)")
        return " or ".join(parts) + " a day"


def _price(budget: BudgetConfig, country: str) -> Decimal:
    prices = budget.prices or {}
    found = prices.get(country, prices.get(ALL_COUNTRIES))
    return found if found is not None else max(prices.values())


@lru_cache(maxsize=4)
def _day_bounds(zone: ZoneInfo, day_ordinal: int) -> tuple[str, int]:
    start = datetime.fromordinal(day_ordinal).replace(tzinfo=zone)
    following = (start + timedelta(days=1)).replace(tzinfo=zone)  # wall-clock midnight
    return start.strftime("%Y%m%d"), int(following.timestamp() * 1000)


def budget_day(now: datetime, zone: ZoneInfo) -> tuple[str, int]:
    """The budget day `now` falls in, in `zone` (``20261201``), and when it ends (epoch ms:
    the next local midnight, so a day with a daylight-saving change is 23 or 25 hours)."""
    return _day_bounds(zone, now.astimezone(zone).toordinal())
