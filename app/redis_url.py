"""SMS_REDIS_URL, read: one Redis server, or a master found through Redis Sentinel.

Pure parsing (no `redis` import: settings check the URL with it, the store connects with
it). A URL the service cannot use is a `ValueError` whose message says what to write
instead, and never repeats a password.

    redis://[user:password@]host[:port][/db]          rediss://… (TLS)   unix:///path.sock
    redis+sentinel://[user:password@]host[:port][,host[:port]…]/master-name[/db]
        [?sentinel_username=…&sentinel_password=…]

For Sentinel, the user and password before the `@` are the master's (and its replicas'),
as in a `redis://` URL; the Sentinels' own ACL user and password, when they have one, are
the query parameters `sentinel_username` / `sentinel_password` (redis-rb's and go-redis'
names for them). A Sentinel's port defaults to 26379.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["SentinelTarget", "parse_redis_url"]

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
_PLAIN_SCHEMES = ("redis", "rediss", "unix")
_SENTINEL_OPTIONS = frozenset({"sentinel_username", "sentinel_password"})
_HOST_PORT = re.compile(
    r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\[\]:/]+))(?::(?P<port>\d+))?$"
)
_SYNTAX = (
    "redis+sentinel://[user:password@]host:port[,host:port…]/master-name[/db][?sentinel_password=…]"
)


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """A Redis master found through Sentinels: where they are, its name, how to log in."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None  # the master's ACL user and password
    password: str | None = None
    sentinel_username: str | None = None  # the Sentinels' own
    sentinel_password: str | None = None

    def __repr__(self) -> str:  # never a password in a log line or a trace
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"SentinelTarget({hosts}/{self.master}/{self.db})"


def parse_redis_url(url: str) -> str | SentinelTarget:
    """`url` itself for one server (redis://, rediss://, unix://), or the Sentinel setup it
    names. Raises ValueError, saying what to change, for any other URL."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(f"not a URL: expected redis://host:port/db or {_SYNTAX}")
    if scheme in ("redis+cluster", "rediss+cluster"):
        raise ValueError(
            "Redis Cluster is not supported: smsdest's scripts write several keys at once, "
            "which a Cluster spreads over nodes. Use a standalone Redis (redis://), or one "
            f"with Sentinel for failover ({_SYNTAX})"
        )
    if scheme == SENTINEL_SCHEME:
        return _sentinel_target(rest)
    if scheme not in _PLAIN_SCHEMES:
        raise ValueError(
            f"unknown scheme {scheme}://: use redis://, rediss://, unix:// or {SENTINEL_SCHEME}://"
        )
    if scheme != "unix":
        _check_plain(rest)
    return url


def _check_plain(rest: str) -> None:
    netloc, _, path = rest.partition("/")
    hosts = netloc.rpartition("@")[2].partition("?")[0]
    if "," in hosts:
        raise ValueError(
            "several hosts in a redis:// URL: smsdest talks to one Redis server (a Cluster "
            f"is not supported); for Sentinels and a master name use {_SYNTAX}"
        )
    if hosts and not _HOST_PORT.match(hosts):
        raise ValueError(f"{hosts!r} is not host[:port]")
    db = path.partition("?")[0]
    if db and not db.isdigit():
        raise ValueError(f"the database must be a number (redis://host:port/0), not {db!r}")


def _sentinel_target(rest: str) -> SentinelTarget:
    parts = urlsplit(f"{SENTINEL_SCHEME}://{rest}")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    username, password = None, None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(item) for item in hosts.split(","))
    path = [unquote(segment) for segment in parts.path.split("/")[1:]]
    if not path or not path[0] or len(path) > 2:
        raise ValueError(f"a Sentinel URL names its master after the hosts: {_SYNTAX}")
    master, db = path[0], path[1] if len(path) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"the database after the master's name must be a number, not {db!r}")
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(options) - _SENTINEL_OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown Sentinel URL option(s) {', '.join(unknown)}: only "
            f"{', '.join(sorted(_SENTINEL_OPTIONS))}"
        )
    return SentinelTarget(
        sentinels=sentinels,
        master=master,
        db=int(db),
        username=username,
        password=password,
        sentinel_username=options.get("sentinel_username", [None])[-1] or None,
        sentinel_password=options.get("sentinel_password", [None])[-1] or None,
    )


def _host_port(item: str) -> tuple[str, int]:
    found = _HOST_PORT.match(item.strip())
    if not found:
        raise ValueError(f"{item!r} is not a Sentinel's host[:port]: {_SYNTAX}")
    port = int(found["port"] or SENTINEL_PORT)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} of Sentinel {item!r} is out of range")
    return found["ipv6"] or found["host"], port
