"""Twilio's webhooks: status callbacks and inbound messages, signature-checked first.

The signature check is Twilio's and stays here, with Twilio's routes (a second provider
brings its own routes and its own check); the provider then parses the verified form into
the seam's vocabulary, which is all `WebhookService` sees."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.api.deps import ServicesDep
from app.api.params import DeliveryId
from app.api.schemas import WebhookAnswer, errors
from app.errors import Forbidden, InvalidInput
from app.twilio.signature import validate_signature

router = APIRouter(tags=["twilio webhooks"], responses=errors(403, 413, 422, 503))

_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def public_url(request: Request, public_base_url: str | None) -> str:
    """The URL Twilio called: behind a TLS-terminating proxy the app sees another one."""
    if not public_base_url:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{public_base_url}{request.url.path}{query}"


async def verified_form(request: Request, services: ServicesDep) -> dict[str, str]:
    """The request's form fields, once `X-Twilio-Signature` proves Twilio sent them."""
    token = services.settings.twilio_auth_token
    if token is None:
        raise Forbidden("TWILIO_AUTH_TOKEN is needed to verify Twilio's webhook signatures")
    body = await request.body()
    is_json = request.headers.get("content-type", "").startswith("application/json")
    params = {} if is_json else parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if not validate_signature(
        token.get_secret_value(),
        public_url(request, services.settings.public_base_url),
        params,
        request.headers.get("x-twilio-signature"),
        body,
    ):
        raise Forbidden("missing or invalid X-Twilio-Signature")
    if is_json:
        return _json_fields(body)
    return {name: values[-1] for name, values in params.items()}


def _json_fields(body: bytes) -> dict[str, str]:
    """A signed JSON body's top-level scalars, as the form fields Twilio would have sent."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput([{"field": "body", "problem": "not valid JSON"}]) from None
    if not isinstance(data, dict):
        raise InvalidInput([{"field": "body", "problem": "expected a JSON object"}])
    return {k: str(v) for k, v in data.items() if isinstance(v, str | int | float)}


VerifiedForm = Annotated[dict[str, str], Depends(verified_form)]


# Twilio's retries of one webhook carry the same token (a replay may not: headers are
# unsigned, so the signed MessageSid and status are what make a replay a no-op).
_IDEMPOTENCY_TOKEN = "i-twilio-idempotency-token"
# Twilio posts form fields (or, for some products, JSON with `bodySHA256` in the URL).
_TWILIO_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        name: {"type": "string"}
                        for name in ("MessageSid", "MessageStatus", "From", "To", "Body")
                    },
                    "additionalProperties": {"type": "string"},
                }
            }
        },
    }
}


@router.post(
    "/v1/twilio/status",
    summary="Twilio message status callback",
    response_model=WebhookAnswer,
    openapi_extra=_TWILIO_FORM,
)
async def status_callback(
    request: Request, form: VerifiedForm, services: ServicesDep
) -> dict[str, object]:
    token = request.headers.get(_IDEMPOTENCY_TOKEN)
    update = services.provider.parse_status(form)
    result = await services.webhooks.status_callback(update, token)
    return result.to_json()


@router.post(
    "/v1/twilio/status/{delivery_id}",
    summary="Twilio message status callback for one delivery",
    response_model=WebhookAnswer,
    openapi_extra=_TWILIO_FORM,
)
async def delivery_status_callback(
    request: Request,
    delivery_id: DeliveryId,
    form: VerifiedForm,
    services: ServicesDep,
) -> dict[str, object]:
    """The URL each message carries (with SMS_PUBLIC_BASE_URL): it names the delivery, so
    the callback settles a delivery whose send's answer was lost (outcome unknown)."""
    token = request.headers.get(_IDEMPOTENCY_TOKEN)
    update = services.provider.parse_status(form)
    result = await services.webhooks.status_callback(update, token, named=delivery_id)
    return result.to_json()


@router.post(
    "/v1/twilio/inbound",
    summary="Twilio incoming message webhook",
    response_class=Response,
    responses={200: {"description": "Empty TwiML", "content": {"text/xml": {}}}},
    openapi_extra=_TWILIO_FORM,
)
async def inbound_message(request: Request, form: VerifiedForm, services: ServicesDep) -> Response:
    message = services.provider.parse_inbound(form)
    await services.webhooks.inbound_message(message, request.headers.get(_IDEMPOTENCY_TOKEN))
    # An empty TwiML answer: no automatic reply from us (Twilio's opt-out replies still apply).
    return Response(_EMPTY_TWIML, media_type="text/xml")
