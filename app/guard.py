"""The pumping guard's velocity limits and the recipients' frequency caps, as data.

Pure policy (no I/O): what a destination's deliveries carry into admission, where the
store's Lua checks and counts them in the same atomic step as dedupe and the throttle
(`app/store/guard.py`, `admission_checks.lua`).

Velocity: SMS pumping texts many *new* numbers in a few ranges a colluding carrier owns
(sequential numbers of one 1,000-number block: the E.164 number without its last three
digits). A first-time recipient — a number this service has never admitted a live text
to within its retention — counts against hourly limits per block and per country, for
each destination and across all of them; numbers already texted pass freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.durations import Seconds, format_duration

# Defaults a real product ships (README, "Velocity"): a sign-up flow rarely meets more
# than a handful of new numbers in one block in an hour (a block is a slice of one
# carrier's range; real users spread over millions of them), while a pumping attack
# walks a block number by number. 1,000 first-time recipients an hour in one country
# is ~24,000 a day: a product that grows faster raises it.
DEFAULT_PER_BLOCK = 10
DEFAULT_PER_COUNTRY = 1000
HOUR_MS = 3_600_000

# Twilio's SMS Pumping Protection answers: how long a number it blocked (and the
# first-time recipients of its block) are left alone. 30450: Twilio blocks the number for
# 15-30 minutes, we wait an hour; 30453: Twilio's block lasts hours and the number is
# likely fraudulent, we wait a day.
PUMPING_BACKOFF_S: MappingProxyType[int, int] = MappingProxyType({30450: 3600, 30453: 86_400})

VelocityScope = Literal["destination", "overall"]
VelocityRange = Literal["block", "country"]


def block_of(number: str) -> str:
    """The 1,000-number block of an E.164 number: all but its last three digits."""
    return number[:-3]


def shown_block(block: str) -> str:
    """A block as people read it: ``+1415555xxx`` (not personal data: a range)."""
    return block + "xxx"


@dataclass(frozen=True, slots=True)
class VelocityLimit:
    """At most `limit` first-time recipients an hour in one `range` (a block, a
    country), counted for the delivery's destination or across every destination."""

    range: VelocityRange
    scope: VelocityScope
    limit: int

    def describe(self, where: str, destination: str) -> str:
        """``block +1415555xxx (destination 'x')`` / ``country US (all destinations)``."""
        whose = "all destinations"
        if self.scope == "destination":
            whose = f"destination '{destination}'"
        return f"{self.range} {where} ({whose})"


class VelocityConfig(BaseModel):
    """A destination's own velocity limits (`velocity:`); unset ones: the service's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_block: int | None = Field(default=None, ge=0)
    per_country: int | None = Field(default=None, ge=0)


def velocity_limits(
    config: VelocityConfig | Literal[False] | None, per_block: int, per_country: int
) -> tuple[VelocityLimit, ...]:
    """A destination's limits, in the order admission checks them: its own (its config,
    else the service's), then the service's across all destinations. 0 turns one off;
    `velocity: false` turns them all off for the destination (nothing counted either)."""
    if config is False:
        return ()
    own_block = per_block if config is None or config.per_block is None else config.per_block
    own_country = (
        per_country if config is None or config.per_country is None else config.per_country
    )
    limits = (
        VelocityLimit("block", "destination", own_block),
        VelocityLimit("country", "destination", own_country),
        VelocityLimit("block", "overall", per_block),
        VelocityLimit("country", "overall", per_country),
    )
    return tuple(limit for limit in limits if limit.limit > 0)


class CapRule(BaseModel):
    """At most `texts` texts per recipient in any `per` (a sliding window)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    texts: int = Field(ge=1, le=1_000_000)
    per: Seconds = Field(ge=60, le=31_536_000)

    def describe(self) -> str:
        """``3 per 1d``."""
        return f"{self.texts} per {format_duration(self.per)}"


# `caps:` in the destinations file: category → its rules, or "exempt".
CapsConfig = dict[str, list[CapRule] | Literal["exempt"]]
DEFAULT_CATEGORY = "default"


@dataclass(frozen=True, slots=True)
class Caps:
    """The caps a destination's texts count against: its category's rules (none: not
    capped, as an exempt category is)."""

    category: str = DEFAULT_CATEGORY
    rules: tuple[CapRule, ...] = ()


NO_CAPS = Caps()


def caps_for(category: str | None, caps: CapsConfig) -> Caps:
    """The caps of a destination in `category` (None: the `default` category)."""
    name = category or DEFAULT_CATEGORY
    rules = caps.get(name)
    return Caps(name, tuple(rules) if isinstance(rules, list) else ())
