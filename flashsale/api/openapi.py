"""The OpenAPI 3.1 document of the route table, from the same types the API decodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from flashsale import __version__
from flashsale.api.problems import ProblemDocument
from flashsale.api.routes import Audience, Route
from flashsale.api.schemas import IDENTIFIER_PATTERN

_REF = "#/components/schemas/{name}"
_BODY_TYPES = ("application/json", "application/msgpack")
_ERROR_DESCRIPTIONS = {
    400: "invalid_request: malformed body, wrong types, out-of-range values, unknown fields",
    401: "unauthorized: missing or wrong bearer token",
    403: "queue_required: the sale's waiting room is on; send its Purchase-Token",
    404: "not_found",
    409: "a business refusal; `code` says which (order_not_pending for confirm/cancel)",
    413: "payload_too_large",
    422: "idempotency_conflict",
    429: "rate_limited (carries Retry-After)",
    503: "overloaded: shedding load or the store is unavailable (carries Retry-After)",
}
# Path parameters that are not identifiers.
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "ticket": {
        "type": "string",
        "pattern": r"^[A-Za-z0-9_.:-]{1,64}\.[A-Za-z0-9_-]{22}$",
        "description": "The ticket joining the queue returned",
    },
}
_TAG_DESCRIPTIONS = {
    Audience.SHOPPER: "Called by the store frontend on behalf of a shopper.",
    Audience.OPERATOR: "Scheduling and watching sales; needs the admin bearer token.",
    Audience.OPERATIONS: "Probes, metrics and this document.",
}


def openapi_document(routes: Sequence[Route]) -> dict[str, Any]:
    schema_types = {kind for r in routes for kind in (r.ok_type, r.body) if kind is not None}
    schema_types |= {kind for r in routes for _status, kind, _text in r.also}
    _, components = msgspec.json.schema_components(
        [*sorted(schema_types, key=lambda kind: kind.__name__), ProblemDocument],
        ref_template=_REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    for kind in schema_types:
        components[kind.__name__].update(getattr(kind, "json_schema_rules", {}))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flashsale",
            "version": __version__,
            "description": "Flash-sale order engine. Every non-2xx answer is an RFC 9457 "
            "problem document (application/problem+json) with a `code`.",
        },
        "tags": [
            {"name": tag.value, "description": text} for tag, text in _TAG_DESCRIPTIONS.items()
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(route: Route) -> dict[str, Any]:
    admin = route.audience is Audience.OPERATOR
    ok: dict[str, Any] = {"description": route.summary}
    if route.ok_type is not None:
        ok["content"] = _content(route.ok_type)
    responses = {str(route.ok_status): ok}
    for status, kind, description in route.also:
        responses[str(status)] = {"description": description, "content": _content(kind)}
    links = {link.name: link.document() for link in route.links}
    for status in (route.ok_status, *(status for status, _kind, _text in route.also)):
        if links:
            responses[str(status)]["links"] = links
    for status in route.errors + ((401,) if admin else ()):
        responses[str(status)] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/problem+json": {"schema": _ref(ProblemDocument)}},
        }
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "tags": [route.audience.value],
        "summary": route.summary,
        "responses": dict(sorted(responses.items())),
    }
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _PATH_SCHEMAS.get(name) or _identifier_schema(),
        }
        for name in route.path_params
    ] + [*route.headers, *route.query]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": _content(route.body)}
    if admin:
        operation["security"] = [{"adminToken": []}]
    return operation


def _ref(kind: type) -> dict[str, str]:
    return {"$ref": _REF.format(name=kind.__name__)}


def _content(kind: type) -> dict[str, Any]:
    return {media: {"schema": _ref(kind)} for media in _BODY_TYPES}


def _identifier_schema() -> dict[str, Any]:
    return {"type": "string", "pattern": IDENTIFIER_PATTERN}
