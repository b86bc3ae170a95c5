"""The OpenAPI schema is the truth: schemathesis sends generated requests to every operation
(through the WSGI app, with a real key) and checks there is no server error and that every
answer matches the schema (status, content type, headers, body). Bounded to stay quick."""

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import key_for
from tests.api.test_jobs_api import fund, make_jobs

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def acme_key(acme, alice, settings, uploads_stack) -> Iterator[str]:
    settings.API_RATE_PER_MINUTE = 100_000
    fund(acme, 10_000)
    make_jobs(acme, alice, 3)
    # The raw WSGI app closes the database connection after each request, as a server should;
    # the test's transaction must outlive them (Django's test client does the same).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield key_for(alice, acme)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@hypothesis_settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_its_schema_says(case, acme_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {acme_key}"}, checks=CHECKS)
