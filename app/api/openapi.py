"""`/openapi.json`: FastAPI's description plus what its routes cannot declare themselves —
the event shapes `POST /v1/events` accepts (its fast path reads the body itself, so the
route has no body parameter to describe)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from app.api.schemas import ErrorBody, IngestAnswer, IngestBody, errors

_REF = "#/components/schemas/{model}"


def _schema(adapter: TypeAdapter[Any], components: dict[str, Any], mode: Any) -> dict[str, Any]:
    schema = adapter.json_schema(ref_template=_REF, mode=mode)
    components.update(schema.pop("$defs", {}))
    return schema


def ingest_operation(components: dict[str, Any]) -> dict[str, Any]:
    """What the `POST /v1/events` operation takes and answers (its route declares nothing:
    the fast path in front of it reads the body and writes the answer itself)."""
    body = _schema(TypeAdapter(IngestBody), components, "validation")
    answer = _schema(TypeAdapter(IngestAnswer), components, "serialization")
    responses: dict[str, Any] = {
        "202": {
            "description": "A decision per matching destination, for each event",
            "content": {"application/json": {"schema": answer}},
        }
    }
    components.setdefault("ErrorBody", _schema(TypeAdapter(ErrorBody), components, "serialization"))
    for status, response in errors(401, 413, 415, 422, 503).items():
        responses[str(status)] = {
            "description": response["description"],
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}},
        }
    return {
        "requestBody": {
            "required": True,
            "description": 'One event, a JSON array of events, or `{"batch": [...]}`; '
            "optionally gzip- or deflate-compressed (`Content-Encoding`).",
            "content": {"application/json": {"schema": body}},
        },
        "responses": responses,
    }


def install_contract(app: FastAPI) -> None:
    """Serve FastAPI's description completed with the ingest operation (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            description = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            components = description.setdefault("components", {}).setdefault("schemas", {})
            description["paths"]["/v1/events"]["post"].update(ingest_operation(components))
            app.openapi_schema = description
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
