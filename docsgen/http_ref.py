"""The HTTP reference, rendered from the app's own OpenAPI document.

The document is made by ``create_app(settings).openapi()`` — what ``GET /openapi.json`` and
``authgate openapi`` answer — with default settings, so every route the code declares is here.
Routes left out of the schema on purpose (``/metrics``, ``/docs``, ``/openapi.json``) are listed
from the app's routing table at the end.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fastapi.routing
from fastapi import FastAPI

from authgate.app import create_app
from authgate.config import Settings

METHODS = ("get", "post", "put", "patch", "delete")
TAG_TITLES = {
    "auth": "Sign-up and sign-in",
    "users": "The signed-in user",
    "sessions": "Sessions",
    "oauth": "External providers",
    "admin": "Administration",
    "well-known": "Well-known documents",
    "ops": "Operations",
}


@contextmanager
def _clean_environment() -> Iterator[None]:
    """Defaults only: neither the builder's ``AUTHGATE_*`` variables nor a ``.env`` count."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("AUTHGATE_")}
    for key in saved:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)


def build_app() -> FastAPI:
    with _clean_environment():
        return create_app(Settings(_env_file=None))


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(METHOD, path, operation)`` for every operation of the document, in its order."""
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def operation_anchor(method: str, path: str) -> str:
    return "op-" + method.lower() + "-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def schema_anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def type_of(schema: dict[str, Any]) -> str:
    """A short Markdown name for a JSON schema, linking to named component schemas."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{schema_anchor(name)})"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            parts = [type_of(part) for part in schema[key]]
            return " or ".join(dict.fromkeys(parts))
    if "const" in schema:
        return f"`{schema['const']!r}`".replace("'", '"')
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return "array of " + type_of(schema.get("items", {}))
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        inner = type_of(extra) if isinstance(extra, dict) else "any"
        return f"object of {inner}"
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind:
        fmt = schema.get("format")
        return f"{kind} ({fmt})" if fmt else str(kind)
    return "any"


def _content_line(content: dict[str, Any]) -> str:
    parts = []
    for media, body in content.items():
        schema = body.get("schema")
        parts.append(f"`{media}` {type_of(schema)}" if schema else f"`{media}`")
    return "; ".join(parts)


def render_operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    out = [f"### `{method} {path}` {{#{operation_anchor(method, path)}}}", ""]
    summary = op.get("summary")
    if summary:
        out += [f"**{summary}**", ""]
    if op.get("description"):
        out += [op["description"].strip(), ""]
    if op.get("security"):
        schemes = sorted({name for requirement in op["security"] for name in requirement})
        out += ["Authentication: " + ", ".join(f"`{s}`" for s in schemes), ""]
    params = op.get("parameters", [])
    if params:
        out += [
            "| parameter | in | required | type | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for param in params:
            out.append(
                f"| `{param['name']}` | {param['in']} | {'yes' if param.get('required') else 'no'}"
                f" | {_cell(type_of(param.get('schema', {})))}"
                f" | {_cell(param.get('description', ''))} |"
            )
        out.append("")
    body = op.get("requestBody")
    if body:
        required = "required" if body.get("required") else "optional"
        out += [f"Request body ({required}): {_content_line(body.get('content', {}))}", ""]
    out += ["| status | description | body | headers |", "| --- | --- | --- | --- |"]
    for status, response in sorted(op.get("responses", {}).items()):
        headers = ", ".join(f"`{name}`" for name in response.get("headers", {}))
        out.append(
            f"| {status} | {_cell(response.get('description', ''))}"
            f" | {_cell(_content_line(response.get('content', {})))} | {headers} |"
        )
    out.append("")
    return out


def render_schema(name: str, schema: dict[str, Any]) -> list[str]:
    out = [f"### {name} {{#{schema_anchor(name)}}}", ""]
    if schema.get("description"):
        out += [" ".join(schema["description"].split()), ""]
    properties: dict[str, Any] = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        out += ["| field | type | required | description |", "| --- | --- | --- | --- |"]
        for field, sub in properties.items():
            out.append(
                f"| `{field}` | {_cell(type_of(sub))} | {'yes' if field in required else 'no'}"
                f" | {_cell(sub.get('description', ''))} |"
            )
        out.append("")
    elif "enum" in schema:
        out += [type_of(schema), ""]
    return out


def all_routes(app: FastAPI) -> Iterator[Any]:
    """Every route of the app with its full path. FastAPI ≥ 0.16x keeps included routers as
    one entry of ``app.routes`` and walks them with ``iter_route_contexts``; older versions list
    the routes themselves."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    return iter(walk(app.routes)) if walk is not None else iter(app.routes)


def unlisted_routes(app: FastAPI) -> list[tuple[str, str]]:
    """``(METHODS, path)`` of the routes the OpenAPI document leaves out on purpose: every
    method-bearing route none of whose methods the document lists (mounts have no methods)."""
    documented = app.openapi().get("paths", {})
    rows: list[tuple[str, str]] = []
    for route in all_routes(app):
        methods = sorted(m for m in (getattr(route, "methods", None) or ()) if m != "HEAD")
        path = getattr(route, "path", None)
        if not methods or not isinstance(path, str):
            continue
        if any(m.lower() in documented.get(path, {}) for m in methods):
            continue
        rows.append((", ".join(methods), path))
    return rows


UNLISTED_NOTES = {
    "/openapi.json": "this document as JSON",
    "/metrics": "Prometheus metrics ([monitoring](../guides/monitoring.md))",
    "/docs": "Swagger UI, served from local assets",
    "/docs/oauth2-redirect": "Swagger UI's OAuth 2 redirect page",
}


def render(app: FastAPI | None = None) -> str:
    """The Markdown of ``reference/http.md``."""
    app = app or build_app()
    spec = app.openapi()
    ops = list(operations(spec))
    out = [
        "# HTTP reference",
        "",
        f"Generated from authgate {spec['info']['version']}'s own OpenAPI document",
        "(`create_app(Settings()).openapi()`, the same as `GET /openapi.json` and",
        "`authgate openapi`) when this site was built: every route, every status it can answer,",
        "the headers that come with them and every schema. What each answer *means* — the rules",
        "behind the statuses — is the [API contract](../api.md). Errors are RFC 9457",
        "`application/problem+json` ([Problem](#schema-problem)).",
        "",
        f"{len(ops)} operations.",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for method, path, op in ops:
        by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((method, path, op))
    out += ["| operation | summary |", "| --- | --- |"]
    for tag_ops in by_tag.values():
        for method, path, op in tag_ops:
            link = f"[`{method} {path}`](#{operation_anchor(method, path)})"
            out.append(f"| {link} | {_cell(op.get('summary', ''))} |")
    out.append("")
    for tag, tag_ops in by_tag.items():
        out += [f"## {TAG_TITLES.get(tag, tag)} (`{tag}`)", ""]
        for method, path, op in tag_ops:
            out += render_operation(method, path, op)
    out += [
        "## Not in the OpenAPI document",
        "",
        "| methods | path | what |",
        "| --- | --- | --- |",
    ]
    for methods, path in unlisted_routes(app):
        out.append(f"| {methods} | `{path}` | {UNLISTED_NOTES.get(path, '')} |")
    out.append("")
    schemes = spec.get("components", {}).get("securitySchemes", {})
    if schemes:
        out += ["## Security schemes", ""]
        for name, scheme in schemes.items():
            flows = scheme.get("flows", {})
            detail = ", ".join(
                f"{flow} flow, token URL `{cfg.get('tokenUrl')}`" for flow, cfg in flows.items()
            )
            out.append(f"- `{name}`: {scheme.get('type')}" + (f" ({detail})" if detail else ""))
        out.append("")
    out += ["## Schemas", ""]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        out += render_schema(name, schema)
    return "\n".join(out)
