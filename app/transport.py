"""httpx's client API over aiohttp's connection pool and C HTTP parser.

Why: with httpx's own transport (httpcore: pure-Python h11 over anyio streams) one
Twilio call costs ~650 µs of CPU, ~1 ms with 32 in flight because the pool rescans
every connection for every queued request; through this transport ~220 µs, whatever
the concurrency. The Twilio client keeps speaking httpx (requests, responses,
exceptions, `MockTransport` in tests); only the bytes on the wire move to aiohttp.

Why not the `httpx-aiohttp` package: it maps aiohttp's `ServerDisconnectedError` and
`ClientOSError` (the connection broke after the request went out) to
`httpx.ConnectTimeout`, which says "nothing was sent". For a non-idempotent POST that
turns into a retry and a second SMS. Here only failures that happen before a byte of the
request left become connect errors.

Deadline: httpx's `read` timeout bounds each read, so an answer trickling in a byte at a
time never times out, and the request can outlive any bound a worker relies on. Here the
`read` timeout bounds the whole exchange instead (aiohttp's `total`: waiting for a pooled
connection, connecting, sending, and reading the answer to its last byte); `pool` bounds
waiting for a connection plus connecting, `connect` the connection itself.
"""

from __future__ import annotations

import functools
import ssl
import urllib.request
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AiohttpTransport"]


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An `httpx.AsyncClient` transport: at most `max_connections` pooled connections."""

    def __init__(self, max_connections: int, keepalive_expiry: float = 15.0) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        # Same CA bundle as httpx (certifi), so TLS trust does not change with the transport.
        self._ssl_context: ssl.SSLContext = httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None  # made inside the running loop

    def _open_session(self) -> aiohttp.ClientSession:
        # aiohttp (~9 MB resident) loads with a process's first Twilio call, not at start:
        # a process that only ingests (`serve --no-worker`) never calls Twilio.
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            ssl=self._ssl_context,
        )
        # Not trust_env: aiohttp would then re-read the proxy variables and ~/.netrc from
        # disk, in a thread, for every request (~40% of a worker's CPU). `_proxy_for`
        # reads the proxy variables once instead.
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`, read the whole answer (Twilio's are small JSON documents)."""
        session = self._session or self._open_session()
        import aiohttp  # loaded by _open_session: only a lookup in sys.modules
        import yarl

        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        try:
            async with session.request(
                request.method,
                # encoded=True: the bytes httpx encoded go out as they are, not re-quoted.
                yarl.URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                compress=False,
                proxy=_proxy_for(request.url.scheme, request.url.host),
                timeout=aiohttp.ClientTimeout(
                    total=timeout.get("read"),  # the whole exchange: a deadline, not per read
                    connect=timeout.get("pool"),  # waiting for a pooled connection + connecting
                    sock_connect=timeout.get("connect"),
                ),
            ) as response:
                content = await response.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(_describe(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:  # DNS, refused, TLS handshake
            raise httpx.ConnectError(_describe(exc), request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(_describe(exc), request=request) from exc
        except aiohttp.ClientPayloadError as exc:
            raise httpx.ReadError(_describe(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            # Disconnected, reset or malformed answer once the request may have gone out.
            raise httpx.RemoteProtocolError(_describe(exc), request=request) from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=httpx.ByteStream(content),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode(),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@functools.lru_cache(maxsize=64)
def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy HTTP(S)_PROXY / NO_PROXY give for `host`, as httpx would use by default."""
    if urllib.request.proxy_bypass(host):
        return None
    proxy: str | None = urllib.request.getproxies_environment().get(scheme)
    return proxy


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
