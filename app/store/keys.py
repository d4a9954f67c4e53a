"""Every Redis key the service uses, in one place (and one prefix, for shared Redis)."""

from __future__ import annotations

PREFIX = "smsdest:"

SEND_STREAM = PREFIX + "sends"
SEND_GROUP = "smsdest-workers"
DELAYED_SENDS = PREFIX + "sends:delayed"  # zset: delivery id → due time (ms)
# Written (with a short expiry) by every readiness check: can this Redis take a write now?
READY_PROBE = PREFIX + "ready-probe"
# Written before each WAIT (SMS_REDIS_MIN_REPLICAS): WAIT then covers every earlier write.
REPLICATED_MARK = PREFIX + "replicated-mark"

DELIVERY_INDEX = PREFIX + "deliveries"  # zset of every delivery id, ordered by id
# Secondary indexes share the main index's shape: <prefix><value>.
DESTINATION_INDEX_PREFIX = PREFIX + "deliveries:destination:"
STATUS_INDEX_PREFIX = PREFIX + "deliveries:status:"
RECIPIENT_INDEX_PREFIX = PREFIX + "deliveries:recipient:"


def delivery(delivery_id: str) -> str:
    """Hash holding one delivery record."""
    return f"{PREFIX}delivery:{delivery_id}"


def dedupe(destination_id: str, event_identity: str) -> str:
    """Remembers that an event was already handled for a destination."""
    return f"{PREFIX}dedupe:{destination_id}:{event_identity}"


def throttle(mode: str, scope: str, destination_id: str, recipient: str) -> str:
    """The window a recipient's next message waits for.

    Test mode has its own key space so that trying a destination never uses up a live window.
    """
    if scope == "global":
        return f"{PREFIX}throttle:{mode}:global:{recipient}"
    return f"{PREFIX}throttle:{mode}:destination:{destination_id}:{recipient}"


def cap(mode: str, category: str, recipient: str) -> str:
    """Sorted set of the texts admitted to a recipient in a cap category (id → admitted
    ms), for its frequency caps (test mode apart, like the throttle)."""
    return f"{PREFIX}cap:{mode}:{category}:{recipient}"


def velocity_known(block: str) -> str:
    """Hash of a 1,000-number block's numbers admitted a live text (last 3 digits → 1):
    who is not a first-time recipient any more."""
    return f"{PREFIX}velocity:known:{block}"


def velocity_count(hour_ms: int, range_: str, where: str, destination_id: str | None) -> str:
    """First-time recipients admitted in the hour starting at `hour_ms`, in one block or
    country, for one destination (None: across all)."""
    whose = f"d:{destination_id}" if destination_id is not None else "all"
    return f"{PREFIX}velocity:{hour_ms}:{whose}:{range_}:{where}"


def pumping_backoff(range_: str, where: str) -> str:
    """Set (with an expiry) while a number or a block is backed off after Twilio's SMS
    pumping answer (the value: the code)."""
    return f"{PREFIX}pumping:{range_}:{where}"


SUPPRESSIONS = PREFIX + "suppressions"  # hash: E.164 number → JSON (since, source, keyword)
UNMATCHED_CALLBACKS = PREFIX + "callbacks:unmatched"  # stream of callbacks for unknown SIDs


def webhook_seen(kind: str, sid: str, status: str) -> str:
    """Marks a Twilio webhook (status callback or inbound message) as applied."""
    return f"{PREFIX}webhook:{kind}:{sid}:{status}"


def webhook_token(token: str) -> str:
    """Marks a webhook Twilio sent with this I-Twilio-Idempotency-Token as applied."""
    return f"{PREFIX}webhook:token:{token}"


def twilio_sid(sid: str) -> str:
    """Which delivery a Twilio message SID belongs to."""
    return f"{PREFIX}sid:{sid}"


# Bumped by every reload of the destinations file; each `serve` polls it (config_generation.py).
CONFIG_GENERATION = PREFIX + "config:generation"


def replayed(delivery_id: str) -> str:
    """Which delivery replayed a failed one (a replay sends each failed delivery once)."""
    return f"{PREFIX}replayed:{delivery_id}"


def events_received(epoch_hour: int) -> str:
    """Hash: minute (epoch minutes) → events received in it, one hash per hour."""
    return f"{PREFIX}stats:events:{epoch_hour}"


RECONCILE_LOCK = PREFIX + "reconcile:lock"
RECONCILE_STALE_CURSOR_PREFIX = PREFIX + "reconcile:stale:"  # + delivery status
RECONCILE_EXTERNAL_SINCE = PREFIX + "reconcile:external:since"  # ISO time, sweep start
RECONCILE_EXTERNAL_PAGE = PREFIX + "reconcile:external:page"  # next_page_uri mid-sweep
RECONCILE_EXTERNAL_NEWEST = PREFIX + "reconcile:external:newest"  # newest seen mid-sweep
