"""Two-factor authentication required by a team, and by the admin for staff."""

import pytest
from allauth.core import context
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.urls import reverse

from apps.accounts.adapters import MFAAdapter
from apps.accounts.models import TeamEvent, TeamEventKind
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def enrol(user) -> None:
    TOTP.activate(user, generate_totp_secret())


def require(client, team, on: bool = True):
    data = {"require_mfa": "on"} if on else {}
    return client.post(reverse("accounts:require_two_factor", args=[team.public_id]), data)


def test_an_owner_with_two_factor_requires_it_of_the_team(login, acme, alice):
    enrol(alice)

    response = require(login(alice), acme)

    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.require_mfa
    event = TeamEvent.objects.filter(team=acme).latest("created_at", "id")
    assert (event.kind, event.actor_email) == (TeamEventKind.MFA_REQUIRED, "alice@example.com")


def test_an_owner_without_two_factor_is_told_to_set_it_up_first(login, acme, alice):
    response = require(login(alice), acme)

    acme.refresh_from_db()
    assert not acme.require_mfa
    assert not TeamEvent.objects.filter(kind=TeamEventKind.MFA_REQUIRED).exists()
    page = login(alice).get(response["Location"])
    assert page.status_code == 200


def test_an_admin_may_not_change_the_requirement(login, acme, bob):
    enrol(bob)

    response = require(login(bob), acme)

    assert response.status_code == 403
    acme.refresh_from_db()
    assert not acme.require_mfa


def test_the_settings_page_names_the_members_without_it(login, acme, alice, bob):
    enrol(alice)
    enrol(bob)

    page = login(alice).get(reverse("accounts:team_settings", args=[acme.public_id]))

    assert "Not set up yet (1):" in page.text
    assert "carol@example.com" in page.text
    assert "bob@example.com" not in page.text.split("Not set up yet")[1].split("</p>")[0]


def test_turning_it_off_is_logged_too(login, acme, alice):
    enrol(alice)
    client = login(alice)
    require(client, acme)

    require(client, acme, on=False)

    acme.refresh_from_db()
    assert not acme.require_mfa
    assert (
        TeamEvent.objects.filter(team=acme).latest("created_at", "id").kind
        == TeamEventKind.MFA_OPTIONAL
    )


@pytest.fixture
def acme_requires_it(acme, alice):
    enrol(alice)
    acme.require_mfa = True
    acme.save(update_fields=["require_mfa"])
    return acme


def test_a_member_without_two_factor_is_sent_to_set_it_up(login, acme_requires_it, carol):
    client = login(carol)

    response = client.get(reverse("accounts:members", args=[acme_requires_it.public_id]))

    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_index")
    page = client.get(response["Location"])
    assert "Acme requires two-factor authentication" in page.text


def test_the_dashboard_of_that_team_sends_them_too(login, acme_requires_it, carol):
    client = login(carol)

    response = client.get(reverse("jobs:dashboard", args=[acme_requires_it.public_id]))

    assert response["Location"] == reverse("mfa_index")


def test_a_live_refresh_is_told_to_leave_the_page(login, acme_requires_it, carol):
    response = login(carol).get(
        reverse("accounts:members", args=[acme_requires_it.public_id]),
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("mfa_index")


def test_their_other_teams_stay_open(login, acme_requires_it, carol):
    personal = carol.memberships.get(team__is_personal=True).team

    response = login(carol).get(reverse("accounts:members", args=[personal.public_id]))

    assert response.status_code == 200


def test_once_set_up_the_member_gets_in(login, acme_requires_it, carol):
    enrol(carol)

    response = login(carol).get(reverse("accounts:members", args=[acme_requires_it.public_id]))

    assert response.status_code == 200


def test_a_member_may_still_leave_without_setting_it_up(login, acme_requires_it, carol):
    response = login(carol).post(reverse("accounts:leave_team", args=[acme_requires_it.public_id]))

    assert response["Location"] == reverse("accounts:teams")
    assert not acme_requires_it.memberships.filter(user=carol).exists()


def test_an_outsider_still_gets_404(login, acme_requires_it, charlie):
    response = login(charlie).get(reverse("accounts:members", args=[acme_requires_it.public_id]))

    assert response.status_code == 404


# --- Staff ----------------------------------------------------------------------------------


@pytest.fixture
def staff(db):
    return UserFactory.create(email="ops@example.com", is_staff=True, is_superuser=True)


def test_staff_without_two_factor_are_refused_the_admin_when_required(login, staff, settings):
    settings.STAFF_REQUIRE_MFA = True
    client = login(staff)

    index = client.get(reverse("admin:index"))
    login_page = client.get(index["Location"])

    assert index.status_code == 302
    assert login_page["Location"] == reverse("mfa_index")
    assert client.get(reverse("admin:accounts_team_changelist")).status_code == 302


def test_staff_with_two_factor_use_the_admin(login, staff, settings):
    settings.STAFF_REQUIRE_MFA = True
    enrol(staff)

    assert login(staff).get(reverse("admin:index")).status_code == 200


def test_outside_production_staff_need_not_have_it(login, staff, settings):
    settings.STAFF_REQUIRE_MFA = False

    assert login(staff).get(reverse("admin:index")).status_code == 200
    assert not Authenticator.objects.filter(user=staff).exists()


# --- Security keys --------------------------------------------------------------------------


def test_security_keys_are_bound_to_the_domain_in_settings(rf, settings):
    settings.WEBAUTHN_RP_ID = "unmark.example"

    with context.request_context(rf.get("/", HTTP_HOST="testserver")):
        relying_party = MFAAdapter().get_public_key_credential_rp_entity()

    assert relying_party == {"id": "unmark.example", "name": "Unmark"}


def test_without_one_they_are_bound_to_the_host_the_site_is_opened_on(rf, settings):
    settings.WEBAUTHN_RP_ID = None

    with context.request_context(rf.get("/", HTTP_HOST="localhost:8123")):
        relying_party = MFAAdapter().get_public_key_credential_rp_entity()

    assert relying_party["id"] == "localhost"


def test_the_admin_signs_people_in_through_the_product_sign_in(client, staff):
    response = client.get(reverse("admin:login"), {"next": "/admin/jobs/job/"})

    assert response.status_code == 302
    assert response["Location"] == reverse("account_login") + "?next=/admin/jobs/job/"
    assert (
        client.post(
            reverse("admin:login"), {"username": staff.email, "password": PASSWORD}
        ).status_code
        == 302
    )
    assert "_auth_user_id" not in client.session  # the admin's form signs nobody in
