"""The docs page and the schema: served from this site only, inside the site's CSP."""

import re

from django.contrib.staticfiles import finders
from django.test import Client
from django.utils.html import escape


def test_the_schema_is_openapi_3_at_its_address(db):
    schema = Client().get("/api/v1/openapi.json").json()

    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Unmark API"
    assert schema["components"]["securitySchemes"] == {
        "ApiKeyAuth": {"type": "http", "scheme": "bearer"}
    }
    assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/balance", "/api/v1/credits"} <= set(
        schema["paths"]
    )
    refusal = schema["paths"]["/api/v1/jobs"]["post"]["responses"]["402"]
    assert list(refusal["content"]) == ["application/problem+json"]


def test_the_docs_page_uses_only_this_sites_files_inside_the_csp(db):
    response = Client().get("/api/docs")

    assert response.status_code == 200
    page = response.content.decode()
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)  # type: ignore[union-attr]
    assert "script-src 'self' 'nonce-" in policy
    assert "style-src 'self'" in policy
    addresses = re.findall(r'(?:src="|<link [^>]*href=")([^"]+)"', page)
    assert addresses
    for address in addresses:
        assert address.startswith("/static/"), address
        assert finders.find(address.removeprefix("/static/")), f"{address} is not served"
    for script in re.findall(r"<script[^>]*>", page):
        assert f'nonce="{nonce}"' in script
    assert "<style" not in page
    assert " style=" not in page
    assert '"url": "/api/v1/openapi.json"' in page


def test_an_unknown_api_address_is_a_problem_too(db):
    for response in (Client().get("/api/v1/nothing/here"), Client().post("/api/v1/jobz")):
        assert response.status_code == 404
        assert response.json()["type"] == "urn:unmark:problem:not-found"


def test_the_docs_page_has_the_favicon_and_a_way_back(db):
    page = Client().get("/api/docs").content.decode()

    assert '<link rel="icon" href="/static/img/favicon.svg"' in page
    assert re.search(r'<a href="/">.*Back to Unmark</a>', page)
    assert "API keys of" not in page


def test_a_signed_in_person_is_offered_their_teams_api_keys_from_the_docs(login, acme, alice):
    page = login(alice).get("/api/docs").content.decode()

    team = alice.memberships.get(team__is_personal=True).team
    assert f'<a href="/t/{team.public_id}/api-keys/">API keys of {escape(team.name)}</a>' in page
