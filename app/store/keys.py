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

# Before 0.x (see README, Upgrading): a zset of every delivery id, ordered by id. Now a
# listing of all deliveries merges the destinations' indexes (and the skipped log).
DELIVERY_INDEX = PREFIX + "deliveries"
LOGGED_DESTINATIONS = PREFIX + "destinations-logged"  # set: destinations with an index
# Secondary indexes share the main index's shape: <prefix><value>.
DESTINATION_INDEX_PREFIX = PREFIX + "deliveries:destination:"
STATUS_INDEX_PREFIX = PREFIX + "deliveries:status:"
# Before 0.x: a zset per recipient (read while its entries last; pruned like the others).
RECIPIENT_INDEX_PREFIX = PREFIX + "deliveries:recipient:"
# Each recipient's deliveries: fields `<recipient>|<id>` of RECIPIENT_SHARDS small hashes
# per quarter of the retention (by the id's time), each expiring whole a retention after
# its quarter ends — ~50 bytes a delivery in a listpack, not a key per recipient
# (recipient_index.py).
RECIPIENT_SHARDS = 256


def recipient_shard(quarter: int, shard: int) -> str:
    """One hash of the recipient index (see RECIPIENT_SHARDS)."""
    return f"{PREFIX}recipients:{quarter}:{shard}"


# Skipped deliveries (throttled, duplicate-free but never sent: final at once) are not a
# record each: they are entries of one stream, packed many to a listpack node, trimmed by
# age as they are added (records.py: a skipped delivery's id names its entry).
SKIPPED_LOG = PREFIX + "skipped"
# A final delivery's dedupe mark (a skipped one's from the start) is a field (event
# identity → the delivery) of one of DEDUPE_SHARDS small hashes per destination and
# generation (half the dedupe TTL), each expiring whole: marks packed up to 512 to a
# listpack, not a key each (a pending delivery's mark is a key: it never expires).
DEDUPE_SHARDS = 64


def delivery(delivery_id: str) -> str:
    """Hash holding one delivery record."""
    return f"{PREFIX}delivery:{delivery_id}"


def dedupe(destination_id: str, event_identity: str) -> str:
    """Remembers that an event was already handled for a destination."""
    return f"{PREFIX}dedupe:{destination_id}:{event_identity}"


def dedupe_bucket(destination_id: str, generation: int, shard: int) -> str:
    """One bucket of a destination's final deliveries' dedupe marks (see DEDUPE_SHARDS)."""
    return f"{PREFIX}dedupe-marks:{destination_id}:{generation}:{shard}"


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


def webhook_seen(kind: str, message_id: str, status: str) -> str:
    """Marks a provider's webhook (status callback or inbound message) as applied."""
    return f"{PREFIX}webhook:{kind}:{message_id}:{status}"


def webhook_token(token: str) -> str:
    """Marks a webhook the provider sent with this idempotency token as applied."""
    return f"{PREFIX}webhook:token:{token}"


def provider_id(message_id: str) -> str:
    """Which delivery a message's id at the provider (Twilio's SID) belongs to."""
    return f"{PREFIX}sid:{message_id}"


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

# Sender pacing (app/store/pacing.py): the declared rates of `senders:` (hash: sender →
# segments per second, replaced whole by each load of the destinations file), and each
# sender's schedule and AIMD factor (a hash per sender, gone after an idle hour).
SENDER_RATES = PREFIX + "senders"


def sender_pace(sender: str) -> str:
    """One sender's pacing state."""
    return f"{PREFIX}pace:{sender}"


# Paused destinations (pauses.py): hash destination id → JSON (since, until, by, reason,
# code). One hash: admission reads one field of it per delivery, a scrape reads it whole.
PAUSES = PREFIX + "pauses"


def held_for(destination_id: str) -> str:
    """Zset of the deliveries held (in the delayed set) because their destination is paused:
    resuming moves them to due at once."""
    return f"{PREFIX}pauses:held:{destination_id}"


def budget(destination_id: str, day: str) -> str:
    """Hash of one destination's spend on one budget day (`segments`, `cost` in millionths):
    expires a day after the day ends."""
    return f"{PREFIX}budget:{destination_id}:{day}"
