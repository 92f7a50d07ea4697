"""Property-based conformance of the whole API to its own ``/openapi.json`` (schemathesis).

Every operation is called with generated requests, valid and invalid, against the app over ASGI
(SQLite, one backend: the spec does not depend on it); every answer must be documented: its
status, its content type, its headers and its body's schema, and none is a 5xx
(docs/api.md §6). Bearer-protected operations are called without a token: their 401 must
conform too. Deterministic (``derandomize``) and bounded (``MAX_EXAMPLES`` per operation)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from authgate.app import create_app
from authgate.config import Settings
from tests.support.settings import make_settings

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def db_backend() -> str:
    """One backend is enough: the documented shapes do not depend on it."""
    return "sqlite"


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    """The app under test, owning its runtime: schemathesis runs its lifespan in its own event
    loop thread on the first call, and it is shut down here."""
    yield create_app(settings)
    asgi.shutdown_lifespans()


# The document does not depend on the settings a test runs with (only the app's runtime does).
schema = schemathesis.openapi.from_dict(create_app(make_settings()).openapi())


@pytest.mark.slow
@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_conforms_to_its_openapi_document(
    case: schemathesis.Case[Any], app: FastAPI
) -> None:
    case.call_and_validate(checks=CHECKS, app=app)
