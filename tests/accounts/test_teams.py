import re

import pytest
from django.http import Http404
from django.urls import reverse

from apps.accounts.access import SESSION_KEY, get_for_member
from apps.accounts.models import Membership

pytestmark = pytest.mark.django_db


def switcher_team_ids(response) -> set[str]:
    """The teams the header's switcher offers, by the ids its forms would post."""
    return set(re.findall(r'name="team" value="([0-9a-f-]{36})"', response.text))


def test_the_switcher_lists_only_the_persons_own_teams(login, alice, acme, charlie):
    response = login(alice).get(reverse("jobs:dashboard"))

    alices_teams = {str(m.team.public_id) for m in Membership.objects.filter(user=alice)}
    assert len(alices_teams) == 2
    assert switcher_team_ids(response) == alices_teams
    assert "charlie" not in response.text


def test_a_new_person_works_in_their_personal_team(login, alice):
    client = login(alice)

    response = client.get(reverse("jobs:dashboard"))

    assert "Working in alice&#x27;s team" in response.text


def test_switching_to_a_team_you_are_in_is_remembered(login, alice, acme):
    client = login(alice)

    response = client.post(
        reverse("accounts:switch_team"), {"team": acme.public_id, "next": "/teams/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/teams/"
    assert client.session[SESSION_KEY] == str(acme.public_id)
    assert "Working in Acme" in client.get(reverse("jobs:dashboard")).text


def test_switching_to_a_team_you_are_not_in_is_refused(login, charlie, acme):
    client = login(charlie)
    client.get(reverse("jobs:dashboard"))
    before = client.session[SESSION_KEY]

    response = client.post(reverse("accounts:switch_team"), {"team": acme.public_id})

    assert response.status_code == 404
    assert client.session[SESSION_KEY] == before
    assert "Working in charlie" in client.get(reverse("jobs:dashboard")).text


def test_switching_with_a_malformed_team_id_is_a_bad_request(login, alice):
    response = login(alice).post(reverse("accounts:switch_team"), {"team": "not-a-uuid"})

    assert response.status_code == 400


def test_switching_never_redirects_off_site(login, alice, acme):
    response = login(alice).post(
        reverse("accounts:switch_team"),
        {"team": acme.public_id, "next": "https://evil.example/"},
    )

    assert response["Location"] == reverse("jobs:dashboard")


def test_a_removed_member_falls_back_to_their_personal_team(login, carol, acme):
    client = login(carol)
    client.post(reverse("accounts:switch_team"), {"team": acme.public_id})
    Membership.objects.filter(team=acme, user=carol).delete()

    response = client.get(reverse("jobs:dashboard"))

    assert "Working in carol&#x27;s team" in response.text


def test_someone_in_no_team_is_sent_to_the_teams_page(login, carol):
    Membership.objects.filter(user=carol).delete()

    response = login(carol).get(reverse("jobs:dashboard"))

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:teams")


def test_the_access_helper_returns_team_objects_to_members(alice, acme, carol):
    membership = Membership.objects.get(team=acme, user=carol)

    assert get_for_member(alice, Membership.objects.all(), pk=membership.pk) == membership


def test_the_access_helper_404s_for_an_outsider(charlie, acme, carol):
    membership = Membership.objects.get(team=acme, user=carol)

    with pytest.raises(Http404):
        get_for_member(charlie, Membership.objects.all(), pk=membership.pk)


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("jobs:dashboard"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
