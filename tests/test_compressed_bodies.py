"""POST /v1/events with Content-Encoding gzip or deflate: decompressed as it streams in,
the size limit applied to the decompressed size (a zip bomb is 413); other encodings 415."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import httpx
import orjson

from tests.conftest import SIGNUP_DESTINATION, RunningService, posthog_webhook
from tests.fake_twilio import FakeTwilio

Start = Callable[..., RunningService]


def post(service: RunningService, body: bytes | Iterator[bytes], encoding: str) -> httpx.Response:
    with service.client() as client:
        return client.post(
            "/v1/events",
            content=body,
            headers={"Content-Type": "application/json", "Content-Encoding": encoding},
        )


def zip_bomb(decompressed_mb: int) -> bytes:
    """`decompressed_mb` MB of spaces (valid JSON whitespace) gzipped to ~1/1000 of that."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    megabyte = b" " * 1_048_576
    parts = [compressor.compress(megabyte) for _ in range(decompressed_mb)]
    return b"".join([*parts, compressor.flush()])


def test_gzip_and_deflate_bodies_are_accepted(
    start_service: Start, fake_twilio: FakeTwilio
) -> None:
    service = start_service(SIGNUP_DESTINATION)
    for n, (encoding, compress) in enumerate(
        [("gzip", gzip.compress), ("deflate", zlib.compress), ("GZip", gzip.compress)]
    ):
        event = orjson.dumps(posthog_webhook(uuid=f"0190e4c6-0000-7000-8000-00000000000{n}"))
        response = post(service, compress(event), encoding)
        assert response.status_code == 202, (encoding, response.text)
        assert response.json()["results"][0]["deliveries"][0]["decision"] == "queued"
    fake_twilio.wait_for_requests(3)


def test_the_limit_applies_to_the_decompressed_size(start_service: Start) -> None:
    service = start_service(SIGNUP_DESTINATION, max_body_bytes=4096)
    event = orjson.dumps(posthog_webhook())
    fits = event + b" " * (4096 - len(event))
    assert post(service, gzip.compress(fits), "gzip").status_code == 202
    over = post(service, gzip.compress(fits + b" "), "gzip")
    assert over.status_code == 413
    assert over.json() == {
        "error": "payload_too_large",
        "detail": "decompressed body is over the limit of 4096 bytes",
    }


def test_a_zip_bomb_is_413_without_inflating_it(start_service: Start) -> None:
    service = start_service(SIGNUP_DESTINATION)
    bomb = zip_bomb(200)  # 200 MB of spaces in ~200 KB
    assert len(bomb) < 1_048_576
    tracemalloc.start()  # the service runs in this process: its allocations are traced too
    try:
        response = post(service, bomb, "gzip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # decompressed no further than the 1 MB limit
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"
    # Streamed in small chunks (no Content-Length), the same.
    chunked = post(service, iter([bomb[i : i + 4096] for i in range(0, len(bomb), 4096)]), "gzip")
    assert chunked.status_code == 413


def test_other_encodings_are_415_naming_them(start_service: Start) -> None:
    service = start_service(SIGNUP_DESTINATION)
    for encoding in ("br", "zstd", "gzip, gzip"):
        response = post(service, b"{}", encoding)
        assert response.status_code == 415, encoding
        assert response.json()["error"] == "unsupported_media_type"
        assert repr(encoding) in response.json()["detail"]
    assert post(service, orjson.dumps(posthog_webhook()), "identity").status_code == 202


def test_broken_compressed_bodies_are_422(start_service: Start) -> None:
    service = start_service(SIGNUP_DESTINATION)
    whole = gzip.compress(orjson.dumps(posthog_webhook()))
    for body, problem in [
        (b"not gzip at all", "not valid gzip data"),
        (whole[: len(whole) // 2], "ends before the end of its gzip stream"),
        (whole + b"junk", "has data after the end of its gzip stream"),
    ]:
        response = post(service, body, "gzip")
        assert response.status_code == 422, problem
        assert response.json()["detail"][0]["field"] == "body"
        assert problem in response.json()["detail"][0]["problem"]
