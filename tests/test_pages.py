import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_landing_page_explains_the_service_and_its_price(client):
    response = client.get("/")

    assert response.status_code == 200
    assert "$0.05" in response.text
    assert "Only process videos you own or have the right to edit." in response.text
    assert reverse("account_signup") in response.text


def test_signed_in_people_skip_the_landing_page(login, alice):
    response = login(alice).get("/")

    assert response.status_code == 302
    personal = alice.memberships.get().team
    assert response["Location"] == reverse("jobs:dashboard", args=[personal.public_id])


def test_pages_carry_a_content_security_policy_with_a_script_nonce(client):
    response = client.get("/")

    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in response.text  # the htmx script tag carries it


def test_static_assets_are_served_by_the_app(client):
    response = client.get("/static/css/app.css")

    assert response.status_code == 200
    assert b"--accent" in b"".join(response.streaming_content)


def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"
    assert body["checks"]["storage"]["status"] == "ok"
    assert body["checks"]["broker"]["lag_s"] == 0


def test_healthz_answers_probes_that_use_an_ip_address_as_host(client):
    response = client.get("/healthz", HTTP_HOST="10.0.0.7")

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
