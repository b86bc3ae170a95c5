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


def test_a_missing_page_is_the_branded_404(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert "This page doesn't exist" in response.text
    assert 'class="site-header"' in response.text
    assert reverse("terms") in response.text  # the footer, with its links


def test_the_500_page_stands_alone_and_is_branded():
    from django.template.loader import render_to_string

    page = render_to_string("500.html")

    assert "Something went wrong on our side" in page
    assert "favicon.svg" in page


@pytest.mark.parametrize("name", ["terms", "privacy", "contact"])
def test_terms_privacy_and_contact_are_linked_from_the_footer(client, name, settings):
    page = client.get(reverse(name))

    assert page.status_code == 200
    assert settings.SUPPORT_EMAIL in page.text
    assert f'href="{reverse(name)}"' in client.get("/").text


def test_an_operator_replaces_the_terms_with_their_own_text(client, settings, tmp_path):
    (tmp_path / "legal").mkdir()
    (tmp_path / "legal" / "terms.html").write_text(
        '{% extends "legal/_page.html" %}{% block text %}<p>Our own terms.</p>{% endblock %}'
    )
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}
    ]

    page = client.get(reverse("terms"))

    assert "Our own terms." in page.text
    assert "Only your own videos" not in page.text


def test_the_favicon_is_served(client):
    response = client.get("/static/img/favicon.svg")

    assert response.status_code == 200


@pytest.mark.parametrize("signed_in", [False, True])
def test_favicon_ico_is_the_apps_icon_not_the_missing_page(client, login, alice, signed_in):
    # Browsers ask for /favicon.ico by themselves, opening a video or a CSV directly.
    browser = login(alice) if signed_in else client

    response = browser.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    icon = response.content
    assert icon[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
    assert int.from_bytes(icon[4:6], "little") >= 2  # sizes for tabs and for bookmarks
    assert "max-age" in response["Cache-Control"]
