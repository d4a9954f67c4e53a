"""The console's pages: thin handlers over the same services the JSON API uses."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from app.api.deps import ServicesDep
from app.console.auth import CSRF_FIELD, Session, SessionKeys
from app.console.words import (
    REASON_WORDS,
    STATUS_WORDS,
    TWILIO_STATUS_WORDS,
    twilio_error_link,
    twilio_error_words,
)
from app.durations import format_duration
from app.errors import InvalidInput, NotFound, ServiceError
from app.pipeline.events import InvalidPayload, parse_event
from app.pipeline.recipients import InvalidRecipient, normalize_phone
from app.services import Services
from app.services.resend import RESENDABLE, resend
from app.sms.reports import MessageQuery
from app.store import StorageError
from app.store.records import iso_ms
from app.store.stats import OUTCOME_SAMPLE, STATUSES, DeliveryStats
from app.store.storage import Store
from app.twilio.errors import TwilioApiError, TwilioTransportError

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.globals.update(
    status_words=STATUS_WORDS,
    reason_words=REASON_WORDS,
    twilio_status_words=TWILIO_STATUS_WORDS,
    twilio_error_link=twilio_error_link,
    twilio_error_words=twilio_error_words,
    csrf_field=CSRF_FIELD,
)
TEMPLATES.env.filters["utc"] = lambda epoch_s: iso_ms(int(epoch_s * 1000))[:19].replace("T", " ")


TEMPLATES.env.filters["duration"] = format_duration
FLASH_COOKIE = "smsdest_flash"
MAX_FORM_BYTES = 256 * 1024  # a pasted event plus a little: bounded like the API's bodies
HOUR, DAY = 3600, 86_400
RECENT_SHOWN = 50  # recent events listed on the tester page


class LoginRequired(Exception):
    """No authenticated session: the answer is a redirect to the login form."""


class CsrfRejected(Exception):
    """A form came without this session's CSRF token."""


class ConsoleRoute(APIRoute):
    """Errors a page meets become an HTML page saying what failed (not the API's JSON)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                query = urlencode({"next": target}) if request.method == "GET" else ""
                return RedirectResponse(f"/console/login?{query}".rstrip("?"), status_code=303)
            except CsrfRejected:
                return _error_page(
                    request,
                    403,
                    "This form was refused: its CSRF token is "
                    "missing or does not belong to your session. Reload the "
                    "page and try again.",
                )
            except ServiceError as exc:
                return _error_page(request, exc.status_code, _words(exc.detail))
            except RequestValidationError as exc:
                problems = [
                    {"field": str(e["loc"][-1]), "problem": str(e["msg"])} for e in exc.errors()
                ]
                return _error_page(request, 422, _words(problems))
            except TwilioApiError as exc:
                return _error_page(request, 502, f"Twilio answered {exc.http_status}: {exc}")
            except TwilioTransportError as exc:
                return _error_page(request, 502, f"Twilio could not be reached: {exc.message}")
            except StorageError:
                log.exception("console: storage unavailable")
                return _error_page(request, 503, "Storage (Redis) is unavailable; retry later.")

        return handle


router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def _keys(request: Request) -> SessionKeys:
    keys: SessionKeys = request.app.state.console_keys
    return keys


async def _session(request: Request) -> Session:
    """The authenticated session, else LoginRequired (the API open: no login needed)."""
    keys = _keys(request)
    session = keys.read(request)
    if session is not None and (session.authenticated or keys.open):
        return session
    if keys.open:
        return keys.new_session(True)
    raise LoginRequired


SessionDep = Annotated[Session, Depends(_session)]


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form (first value of each field), read no further than its bound."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidInput([{"field": "form", "problem": f"over {MAX_FORM_BYTES} bytes"}])
    parsed = parse_qs(bytes(body).decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


async def _checked_form(request: Request, session: Session) -> dict[str, str]:
    form = await _form(request)
    if not _keys(request).csrf_valid(session, form.get(CSRF_FIELD)):
        raise CsrfRejected
    return form


def _render(
    request: Request, session: Session | None, name: str, status: int = 200, **context: Any
) -> HTMLResponse:
    keys = _keys(request)
    flash = request.cookies.get(FLASH_COOKIE)
    response = TEMPLATES.TemplateResponse(
        request,
        name,
        {
            "csrf": keys.csrf_token(session) if session else "",
            "session": session,
            "open_console": keys.open,
            "flash": _read_flash(flash) if flash else None,
            "path": request.url.path,
            **context,
        },
        status_code=status,
    )
    if session is not None:
        keys.write(request, response, session)  # also makes the open console's session stick
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/console")
    _security_headers(response)
    return response


def _security_headers(response: Response) -> None:
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"


def _redirect(request: Request, url: str, flash: str | None = None, kind: str = "ok") -> Response:
    response = RedirectResponse(url, status_code=303)
    if flash:
        value = orjson.dumps({"kind": kind, "text": flash[:500]}).hex()
        response.set_cookie(
            FLASH_COOKIE, value, max_age=60, path="/console", httponly=True, samesite="strict"
        )
    _security_headers(response)
    return response


def _read_flash(raw: str) -> dict[str, str] | None:
    try:
        data = orjson.loads(bytes.fromhex(raw))
        return {"kind": str(data["kind"]), "text": str(data["text"])}
    except (ValueError, KeyError, TypeError):
        return None


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    session = _keys(request).read(request)
    return _render(
        request,
        session if session and session.authenticated else None,
        "error.html",
        status=status,
        status_code=status,
        message=message,
    )


def _words(detail: Any) -> str:
    """A ServiceError's detail as one line: problems as 'field: problem'."""
    if isinstance(detail, list):
        return "; ".join(f"{p.get('field')}: {p.get('problem')}" for p in detail)
    return str(detail)


def _number(raw: str, services: Services, field: str) -> str:
    try:
        return normalize_phone(raw, services.settings.default_region)
    except InvalidRecipient as exc:
        raise InvalidInput([{"field": field, "problem": str(exc)}]) from None


# --- login ----------------------------------------------------------------------------


@router.get("/login")
async def login_form(request: Request, next: str = "/console") -> Response:
    keys = _keys(request)
    session = keys.read(request)
    if (session and session.authenticated) or keys.open:
        return _redirect(request, _safe_next(next))
    # An anonymous session, so that the login form carries a CSRF token too.
    return _render(request, session or keys.new_session(False), "login.html", next=_safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    keys = _keys(request)
    session = keys.read(request)
    if session is None:
        raise CsrfRejected
    form = await _checked_form(request, session)
    target = _safe_next(form.get("next", "/console"))
    if not keys.token_matches(form.get("token", "")):
        log.warning("console: a login with a wrong token was refused")
        return _render(
            request,
            session,
            "login.html",
            status=401,
            next=target,
            error="That is not the admin token (SMS_ADMIN_TOKEN).",
        )
    response = _redirect(request, target)
    keys.write(request, response, keys.new_session(True))  # a new id: no session fixation
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    await _checked_form(request, session)
    response = _redirect(request, "/console/login", "You are logged out.")
    _keys(request).clear(request, response)
    return response


def _safe_next(target: str) -> str:
    """Only a console path: never an open redirect to another site."""
    ok = target.startswith("/console") and not target.startswith("//") and "\\" not in target
    return target if ok else "/console"


# --- overview -------------------------------------------------------------------------


@router.get("")
async def overview(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    stats = _stats(services)
    hour, day = await stats.outcomes_since(HOUR, DAY)
    events_hour, events_day = await _store(services).event_counts.received_since(HOUR, DAY)
    queue = await _store(services).queue_stats.snapshot()
    destinations = services.ingest.destinations.configs()
    paused = await services.pauses.all()
    return _render(
        request,
        session,
        "overview.html",
        windows=[("Last hour", hour, events_hour), ("Last 24 hours", day, events_day)],
        statuses=STATUSES,
        queue=queue,
        oldest_age_s=queue.oldest_age_s if queue.oldest_added_ms else None,
        oldest_at=iso_ms(queue.oldest_added_ms) if queue.oldest_added_ms else None,
        destinations=destinations,
        disabled=[d.id for d in destinations if not d.enabled],
        paused=sorted(paused.values(), key=lambda p: p.destination),
        test_mode=services.settings.global_test_mode,
        sample=OUTCOME_SAMPLE,
    )


def _store(services: Services) -> Store:
    if services.store is None:
        raise ServiceError("this process runs without Redis")
    return services.store


def _stats(services: Services) -> DeliveryStats:
    return _store(services).stats


# --- deliveries -----------------------------------------------------------------------


def _utc_ms(raw: str, field: str) -> int | None:
    """A datetime-local value (or ISO 8601), read as UTC, in epoch ms; '' is None."""
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput([{"field": field, "problem": "must be a date and time"}]) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


@router.get("/deliveries")
async def deliveries(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    destination: str = "",
    status: str = "",
    recipient: str = "",
    since: str = "",
    until: str = "",
    error_code: str = "",
    cursor: str = "",
) -> Response:
    filters = {
        "destination": destination,
        "status": status,
        "recipient": recipient,
        "since": since,
        "until": until,
        "error_code": error_code,
    }
    if error_code and not error_code.isdigit():
        raise InvalidInput([{"field": "error_code", "problem": "must be a number"}])
    page = await services.deliveries.query(
        destination=destination or None,
        status=status or None,
        recipient=_number(recipient, services, "recipient") if recipient else None,
        error_code=int(error_code) if error_code else None,
        since_ms=_utc_ms(since, "since"),
        until_ms=_utc_ms(until, "until"),
        cursor=cursor if cursor.startswith("dl_") else None,
        limit=50,
    )
    next_query = (
        urlencode({**{k: v for k, v in filters.items() if v}, "cursor": page.next_cursor})
        if page.next_cursor
        else None
    )
    return _render(
        request,
        session,
        "deliveries.html",
        items=page.items,
        filters=filters,
        next_query=next_query,
        statuses=STATUSES,
        destination_ids=[c.id for c in services.ingest.destinations.configs()],
    )


@router.get("/deliveries/{delivery_id}")
async def delivery(
    request: Request, delivery_id: str, session: SessionDep, services: ServicesDep
) -> Response:
    record = await services.deliveries.get(delivery_id)
    if record is None:
        raise NotFound(f"no delivery with id {delivery_id!r} (unknown or past retention)")
    public = record.to_public(services.mocked_request(record))
    return _render(
        request,
        session,
        "delivery.html",
        record=record,
        history=public["history"],
        twilio_request=orjson.dumps(public["twilio_request"], option=orjson.OPT_INDENT_2).decode()
        if public["twilio_request"]
        else None,
        resendable=record.status in RESENDABLE,
    )


@router.post("/deliveries/{delivery_id}/resend")
async def resend_delivery(
    request: Request, delivery_id: str, session: SessionDep, services: ServicesDep
) -> Response:
    await _checked_form(request, session)
    admission = await resend(services.replay, delivery_id)
    text = f"Resend: {admission.decision}" + (f" ({admission.detail})" if admission.detail else "")
    kind = "ok" if admission.decision in ("queued", "scheduled") else "warn"
    return _redirect(request, f"/console/deliveries/{admission.delivery_id}", text, kind)


@router.post("/deliveries/{delivery_id}/cancel")
async def cancel_delivery(
    request: Request, delivery_id: str, session: SessionDep, services: ServicesDep
) -> Response:
    await _checked_form(request, session)
    result = await services.messages.cancel(delivery_id)
    return _redirect(
        request, f"/console/deliveries/{delivery_id}", f"Canceled: {result.get('status')}."
    )


# --- destinations ---------------------------------------------------------------------


@router.get("/destinations")
async def destinations(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    configs = services.ingest.destinations.configs()
    totals = await _stats(services).destination_totals([c.id for c in configs], DAY)
    return _render(
        request,
        session,
        "destinations.html",
        rows=list(zip(configs, totals, strict=True)),
        paused=await services.pauses.all(),
        modes={
            c.id: services.ingest.mode_of(found)
            for c in configs
            if (found := services.ingest.destinations.get(c.id))
        },
    )


@router.get("/destinations/{destination_id}")
async def destination(
    request: Request, destination_id: str, session: SessionDep, services: ServicesDep
) -> Response:
    found = services.ingest.destinations.get(destination_id)
    if found is None:
        raise NotFound(f"no destination with id {destination_id!r}")
    outcomes = await _stats(services).destination_outcomes(destination_id, DAY)
    return _render(
        request,
        session,
        "destination.html",
        config=found.config,
        mode=services.ingest.mode_of(found),
        outcomes=outcomes,
        sample=OUTCOME_SAMPLE,
        pause=await services.pauses.get(destination_id),
    )


def _confirmed(form: dict[str, str]) -> None:
    if form.get("confirm") != "yes":
        raise InvalidInput([{"field": "confirm", "problem": "tick the box to confirm"}])


@router.post("/destinations/{destination_id}/pause")
async def pause_destination(
    request: Request, destination_id: str, session: SessionDep, services: ServicesDep
) -> Response:
    form = await _checked_form(request, session)
    _confirmed(form)
    until_ms = _utc_ms(form.get("until", ""), "until")
    until = datetime.fromtimestamp(until_ms / 1000, UTC) if until_ms is not None else None
    pause = await services.pauses.pause(destination_id, form.get("reason"), until)
    back = form.get("back") if form.get("back") == "/console/destinations" else None
    return _redirect(
        request,
        back or f"/console/destinations/{destination_id}",
        f"Paused: {pause.describe()}",
        "warn",
    )


@router.post("/destinations/{destination_id}/resume")
async def resume_destination(
    request: Request, destination_id: str, session: SessionDep, services: ServicesDep
) -> Response:
    form = await _checked_form(request, session)
    _confirmed(form)
    lifted, released = await services.pauses.resume(destination_id)
    text = (
        f"{destination_id} resumed: {released} held deliveries released."
        if lifted
        else f"{destination_id} was not paused."
    )
    back = form.get("back") if form.get("back") == "/console/destinations" else None
    return _redirect(request, back or f"/console/destinations/{destination_id}", text)


# --- tester ---------------------------------------------------------------------------

EXAMPLE_EVENT = {
    "event": {
        "uuid": "0190e4c6-0000-7000-8000-000000000001",
        "event": "user signed up",
        "distinct_id": "user-1",
        "properties": {"plan": "pro"},
    },
    "person": {"id": "p-1", "properties": {"phone": "+14155552671", "first_name": "Ada"}},
}


@router.get("/tester")
async def tester(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    destination: str = "",
    recent: int = 0,
) -> Response:
    raw = None
    if recent:
        sample = services.ingest.recent
        picked = sample.find(recent) if sample else None
        if picked is None:
            raise NotFound(f"recent event {recent} is no longer kept")
        raw = orjson.dumps(orjson.loads(picked.json), option=orjson.OPT_INDENT_2).decode()
    return _tester_page(request, session, services, destination, raw, None)


@router.post("/tester")
async def run_tester(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    form = await _checked_form(request, session)
    destination_id, raw = form.get("destination", ""), form.get("event", "")
    found = services.ingest.destinations.get(destination_id)
    if found is None:
        raise InvalidInput([{"field": "destination", "problem": "pick a destination"}])
    try:
        event = parse_event(orjson.loads(raw))
    except (orjson.JSONDecodeError, InvalidPayload) as exc:
        if isinstance(exc, InvalidPayload):
            problems = "; ".join(f"{p.field or 'event'}: {p.problem}" for p in exc.problems)
            error = f"The event is not one this service accepts: {problems}"
        else:
            error = f"The event is not JSON: {exc}"
        return _tester_page(request, session, services, destination_id, raw, None, error=error)
    send = form.get("action") == "send"
    if send and form.get("confirm") != "yes":
        return _tester_page(
            request,
            session,
            services,
            destination_id,
            raw,
            None,
            error="Sending for real needs the confirmation box ticked.",
        )
    trace = await services.ingest.trace(found, event, mock=not send)
    return _tester_page(request, session, services, destination_id, raw, trace, sent=send)


def _tester_page(
    request: Request,
    session: Session,
    services: Services,
    destination_id: str,
    raw: str | None,
    trace: dict[str, Any] | None,
    **context: Any,
) -> Response:
    sample = services.ingest.recent
    return _render(
        request,
        session,
        "tester.html",
        status=422 if context.get("error") else 200,
        recent=sample.latest(RECENT_SHOWN) if sample else None,
        destination_ids=[c.id for c in services.ingest.destinations.configs()],
        selected=destination_id,
        event_text=raw
        if raw is not None
        else orjson.dumps(EXAMPLE_EVENT, option=orjson.OPT_INDENT_2).decode(),
        trace=trace,
        trace_json=orjson.dumps(trace, option=orjson.OPT_INDENT_2).decode() if trace else None,
        **context,
    )


# --- suppressions ---------------------------------------------------------------------


@router.get("/suppressions")
async def suppressions(
    request: Request, session: SessionDep, services: ServicesDep, q: str = "", cursor: int = 0
) -> Response:
    if q:
        items, next_cursor = await services.suppressions.search(q, 200), 0
    else:
        items, next_cursor = await services.suppressions.page(max(cursor, 0), 100)
    items.sort(key=lambda s: s.since, reverse=True)
    return _render(request, session, "suppressions.html", items=items, q=q, next_cursor=next_cursor)


@router.post("/suppressions")
async def add_suppression(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    form = await _checked_form(request, session)
    number = _number(form.get("number", ""), services, "number")
    added = await services.suppressions.add(number, "console")
    text = f"{number} is suppressed." if added else f"{number} was already suppressed."
    return _redirect(request, "/console/suppressions", text)


@router.post("/suppressions/remove")
async def remove_suppression(
    request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    form = await _checked_form(request, session)
    number = _number(form.get("number", ""), services, "number")
    if not await services.suppressions.remove(number):
        raise NotFound(f"{number} is not suppressed")
    return _redirect(request, "/console/suppressions", f"{number} can be texted again.")


# --- messages -------------------------------------------------------------------------


@router.get("/messages")
async def messages(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    to: str = "",
    cursor: str = "",
) -> Response:
    if not services.settings.has_twilio_credentials:
        return _render(
            request, session, "messages.html", items=[], to=to, next_query=None, no_account=True
        )
    page = await services.messages.list(
        MessageQuery(
            to=_number(to, services, "to") if to else None,
            page_size=50,
            cursor=cursor or None,
        )
    )
    next_query = urlencode({"to": to, "cursor": page.next_cursor}) if page.next_cursor else None
    return _render(
        request,
        session,
        "messages.html",
        items=[m.raw for m in page.messages],  # Twilio's own JSON, as the page shows it
        to=to,
        next_query=next_query,
        no_account=False,
    )


@router.post("/messages/{sid}/cancel")
async def cancel_message(
    request: Request, sid: str, session: SessionDep, services: ServicesDep
) -> Response:
    await _checked_form(request, session)
    result = await services.messages.cancel(sid)
    return _redirect(request, "/console/messages", f"{sid} is {result.get('status')}.")
