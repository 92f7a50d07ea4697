"""``/openapi.json``: FastAPI's document, completed with what no single route declares.

Routes declare the answers of their own rules (``responses=error_responses(...)``). The answers
every route of a kind can give come from layers below them, so they are added here, once:

- a request with a body (POST, PATCH, DELETE under ``/api``) can get 400 (a body that is not
  JSON, an invalid ``Content-Length``), 413 and 415 from the middleware and 422 from validation;
- anything under ``/api`` can get 503 while the database is unreachable;
- 401 carries ``WWW-Authenticate``, 429 and 503 carry ``Retry-After``, a redirect ``Location``;
- every 4xx/5xx outside the OAuth 2 form of ``/auth/token`` is ``application/problem+json``.
"""

from __future__ import annotations

from typing import Any

from authgate.problems import PROBLEM_JSON, error_responses

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; `code` is a stable snake_case identifier.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}

BODY_METHODS = {"post", "put", "patch", "delete"}
#: Statuses of the layers below the routes (docs/api.md §4).
BODY_STATUSES = (400, 413, 415, 422)
API_STATUSES = (503,)

_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer` (`Basic` where the caller authenticates as a client)",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
    302: {
        "Location": {
            "description": "Where the browser goes next",
            "required": True,
            "schema": {"type": "string"},
        }
    },
}

#: Routes whose request body is a form and never refused with 415 (the OAuth 2 token endpoint).
UNCHECKED_BODY_PATHS = ("/api/v1/auth/token",)


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the cross-cutting answers documented on every operation they apply to."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    # FastAPI's own 422 shape is never sent (problems.py renders every validation error).
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            _complete_operation(path, method, operation)
    return schema


def _complete_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses: list[int] = []
    if path.startswith("/api/"):
        statuses.extend(API_STATUSES)
        if method in BODY_METHODS or "requestBody" in operation:
            body = [s for s in BODY_STATUSES if path not in UNCHECKED_BODY_PATHS or s != 415]
            statuses.extend(body)
    if "422" in responses or operation.get("parameters"):
        statuses.append(422)
    for status, response in error_responses(*statuses).items():
        key = str(status)
        if key not in responses:
            responses[key] = response
        else:
            responses[key].setdefault("content", {}).setdefault(
                PROBLEM_JSON, response["content"][PROBLEM_JSON]
            )
    # FastAPI documents its default 422 as application/json; it is a problem here.
    if "422" in responses:
        responses["422"]["content"] = {
            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    for key, response in responses.items():
        headers = _HEADERS.get(int(key)) if key.isdigit() else None
        if headers:
            response.setdefault("headers", {}).update(headers)
