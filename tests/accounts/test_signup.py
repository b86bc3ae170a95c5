import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from apps.accounts.models import Membership, Role, Team, User

pytestmark = pytest.mark.django_db


def sign_up(client, email: str = "new@example.com"):
    return client.post(
        reverse("account_signup"),
        {
            "email": email,
            "password1": "a-long-unusual-pass-1",
            "password2": "a-long-unusual-pass-1",
        },
    )


def test_sign_up_creates_exactly_one_personal_team_owned_by_the_new_user(client):
    response = sign_up(client)

    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    memberships = Membership.objects.filter(user=user)
    assert memberships.count() == 1
    membership = memberships.get()
    assert membership.role == Role.OWNER
    assert membership.team.is_personal
    assert membership.team.name == "new's team"
    assert Team.objects.count() == 1


def test_sign_up_signs_the_person_in_and_lands_on_the_dashboard(client):
    response = sign_up(client)

    assert response["Location"] == reverse("dashboard")
    page = client.get(reverse("dashboard"), follow=True)
    assert page.status_code == 200
    assert "new&#x27;s team" in page.text


def test_sign_up_sends_a_verification_email(client):
    sign_up(client)

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@example.com"]
    assert "confirm" in mail.outbox[0].body.lower()


def test_the_confirmation_email_speaks_for_unmark_and_links_to_the_configured_site(
    client, settings
):
    settings.SITE_URL = "https://unmark.example"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    client.defaults["HTTP_HOST"] = "127.0.0.1:8400"  # an internal name, behind the proxy

    sign_up(client)

    (message,) = mail.outbox
    assert message.subject == f"[{settings.PRODUCT_NAME}] Confirm your email address"
    assert "https://unmark.example/accounts/confirm-email/" in message.body
    assert f"an account on {settings.PRODUCT_NAME} (https://unmark.example)" in message.body
    assert isinstance(message, EmailMultiAlternatives)
    assert "127.0.0.1" not in message.body + str(message.alternatives[0][0])
    assert "You're receiving this email because" not in message.body


def test_sign_up_with_an_email_in_use_in_other_case_is_refused(client, alice):
    response = sign_up(client, email="ALICE@example.com")

    assert response.status_code == 200
    assert "already registered" in response.text
    assert User.objects.count() == 1


def test_signing_in_with_email_and_password_works(client, alice):
    response = client.post(
        reverse("account_login"),
        {"login": "alice@example.com", "password": "correct-horse-battery-staple"},
    )

    assert response.status_code == 302
    assert client.get(reverse("dashboard"), follow=True).status_code == 200


def test_repeated_failed_sign_ins_are_throttled(client, alice):
    for _ in range(5):
        client.post(reverse("account_login"), {"login": "alice@example.com", "password": "wrong"})

    response = client.post(
        reverse("account_login"),
        {"login": "alice@example.com", "password": "correct-horse-battery-staple"},
    )

    assert response.status_code == 200
    assert "Too many failed login attempts" in response.text
    assert "_auth_user_id" not in client.session


def test_signing_out_ends_the_session(login, alice):
    client = login(alice)

    response = client.post(reverse("account_logout"))

    assert response.status_code == 302
    assert client.get(reverse("dashboard"), follow=True).request["PATH_INFO"] == reverse(
        "account_login"
    )


def test_password_reset_sends_a_link_to_a_known_address(client, alice):
    response = client.post(reverse("account_reset_password"), {"email": "alice@example.com"})

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "/accounts/password/reset/key/" in mail.outbox[0].body
