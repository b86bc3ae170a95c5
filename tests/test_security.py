"""Security properties that hold across the whole app, checked page by page."""

import re
import uuid
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from apps.accounts.models import Membership
from apps.jobs import submission
from tests.test_settings import SANE_PRODUCTION_ENV, run_manage

pytestmark = pytest.mark.django_db

LINK = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"


class ScriptsAndStyles(HTMLParser):
    """Collects what a strict Content-Security-Policy would block."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts_without_nonce: list[str] = []
        self.inline_styles: list[str] = []
        self.inline_handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        executable = names.get("type", "text/javascript") in ("text/javascript", "module")
        if tag == "script" and executable and "src" not in names and "nonce" not in names:
            self.scripts_without_nonce.append(str(attrs))
        if tag == "style" and "nonce" not in names:
            self.inline_styles.append("<style>")
        if "style" in names:
            self.inline_styles.append(f"{tag} style={names['style']}")
        self.inline_handlers += [f"{tag} {name}" for name in names if name.startswith("on")]


def pages_for(client: Client, alice) -> list[str]:
    membership = Membership.objects.get(user=alice, team__is_personal=True)
    [job] = submission.submit_jobs(
        membership=Membership.objects.select_related("team", "user").get(pk=membership.pk),
        links=[LINK],
    )
    team = membership.team.public_id
    return [
        reverse("jobs:dashboard", args=[team]),
        job.get_absolute_url(),
        reverse("billing:overview", args=[team]),
        reverse("accounts:teams"),
        reverse("accounts:members", args=[team]),
        reverse("accounts:activity", args=[team]),
        reverse("accounts:team_settings", args=[team]),
        reverse("api_keys:list", args=[team]),
        reverse("api_docs"),
        reverse("account_email"),
        reverse("account_change_password"),
    ]


def test_every_page_sends_a_strict_policy_and_breaks_none_of_it(login, alice, client):
    signed_in = login(alice)
    public = [
        ("/", client),
        (reverse("account_login"), client),
        (reverse("account_signup"), client),
    ]
    private = [(url, signed_in) for url in pages_for(signed_in, alice)]

    for url, browser in public + private:
        response = browser.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self' 'nonce-" in policy, url
        assert "style-src 'self'" in policy, url
        assert "unsafe-inline" not in policy, url
        assert "frame-ancestors 'none'" in policy, url
        found = ScriptsAndStyles()
        found.feed(response.text)
        assert found.scripts_without_nonce == [], url
        assert found.inline_styles == [], url
        assert found.inline_handlers == [], url


def test_the_admin_keeps_to_the_policy_too(client, django_user_model):
    staff = django_user_model.objects.create_superuser("staff@example.com", "pw-staff-123456")
    client.force_login(staff)

    for url in ["/admin/", "/admin/jobs/job/", "/admin/billing/ledgerentry/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "Content-Security-Policy" in response, url


def test_a_signed_in_person_who_is_not_staff_gets_404_anywhere_in_the_admin(login, alice):
    client = login(alice)

    for url in ["/admin/", "/admin/jobs/job/", "/admin/login/", "/admin/logout/"]:
        assert client.get(url).status_code == 404, url


def test_anonymous_people_are_still_sent_to_sign_in_from_the_admin(client):
    index = client.get("/admin/")

    assert index.status_code == 302
    assert client.get(index["Location"])["Location"] == "/accounts/login/?next=/admin/"


def app_routes() -> list[tuple[str, object]]:
    """Every route of the app (the admin aside) with its view."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if getattr(pattern, "app_name", None) != "admin":
                    yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.callback

    return list(walk(get_resolver().url_patterns))


def example_path(route: str) -> str:
    """A concrete path for a route, with made-up values for its converters."""
    path = re.sub(r"<uuid:\w+>", str(uuid.uuid4()), route)
    path = re.sub(r"<int:\w+>", "1", path)
    return "/" + re.sub(r"<(?:str:|slug:)?\w+>", "x", path)


def test_only_the_signed_provider_hooks_and_the_api_skip_csrf():
    exempt = sorted(route for route, view in app_routes() if getattr(view, "csrf_exempt", False))

    # The API authenticates by its Authorization header only, never by the session cookie
    # (tests/api/test_keys.py: a signed-in browser gets 401), so a forged form cannot use it.
    # The upload route runs the same check itself, once the team is known to be the person's
    # (an outsider's body is never read): tests/jobs/test_uploads.py
    # test_a_member_still_needs_the_csrf_token_to_upload.
    assert [route for route in exempt if not route.startswith("api/v1/")] == [
        "hooks/<str:provider>/<str:token>/",
        "hooks/stripe/",
        "t/<uuid:team_id>/uploads/",
    ]


def test_every_other_route_refuses_a_post_without_a_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    routes = [
        (route, example_path(route))
        for route, view in app_routes()
        if not getattr(view, "csrf_exempt", False) and "^" not in route  # regex routes aside
    ]
    assert len(routes) > 40  # the whole app is walked, not a sample

    for route, path in routes:
        response = client.post(path, {"links": LINK, "owns_videos": "on", "name": "X"})
        assert response.status_code == 403, route


def test_rendered_forms_carry_a_csrf_token_and_htmx_sends_it(login, alice):
    page = login(alice).get(reverse("dashboard"), follow=True).text

    assert len(re.findall(r'name="csrfmiddlewaretoken"', page)) >= page.count('method="post"')
    assert re.search(r"<body hx-headers='\{\"X-CSRFToken\": \"[^\"]+\"\}'", page)


def test_production_sets_secure_cookies_and_hsts(tmp_path):
    script = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        " s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, s.DEBUG)"
    )

    result = run_manage(
        "shell", "--no-imports", "-c", script, env=SANE_PRODUCTION_ENV, tmp_path=tmp_path
    )

    assert result.stdout.split()[-5:] == ["True", "True", "31536000", "True", "False"], (
        result.stderr
    )


def test_the_admin_lives_where_admin_url_says(tmp_path):
    script = "from django.urls import reverse; print(reverse('admin:index'))"

    result = run_manage(
        "shell", "--no-imports", "-c", script, env={"ADMIN_URL": "ops-7f3a/"}, tmp_path=tmp_path
    )

    assert result.stdout.split()[-1] == "/ops-7f3a/", result.stderr
