"""Which team a page is about: the one in its URL. `/dashboard/` and `/billing/` lead to the
team chosen last with the switcher (a POST), else the personal team; no GET changes that."""

import re

import pytest
from django.http import Http404, HttpRequest
from django.urls import reverse

from apps.accounts.access import SESSION_KEY, get_team_owned
from apps.accounts.models import Membership, Team, User

pytestmark = pytest.mark.django_db


def switcher_team_ids(response) -> set[str]:
    """The teams the header's switcher offers, by the ids its forms would post."""
    return set(re.findall(r'name="team" value="([0-9a-f-]{36})"', response.text))


def personal_team(person: User) -> Team:
    return Team.objects.get(memberships__user=person, is_personal=True)


def dashboard_of(team: Team) -> str:
    return reverse("jobs:dashboard", args=[team.public_id])


def test_the_switcher_lists_only_the_persons_own_teams(login, alice, acme, charlie):
    response = login(alice).get(dashboard_of(acme))

    alices_teams = {str(m.team.public_id) for m in Membership.objects.filter(user=alice)}
    assert len(alices_teams) == 2
    assert switcher_team_ids(response) == alices_teams
    assert "charlie" not in response.text


def test_a_new_person_lands_in_their_personal_team(login, alice):
    client = login(alice)

    response = client.get(reverse("dashboard"))

    assert response["Location"] == dashboard_of(personal_team(alice))
    assert "Working in alice&#x27;s team" in client.get(response["Location"]).text


@pytest.mark.parametrize("page", ["home", "dashboard", "billing"])
def test_bookmarks_lead_to_the_team_chosen_last(login, alice, acme, page):
    client = login(alice)
    client.post(reverse("accounts:switch_team"), {"team": acme.public_id})

    response = client.get(reverse(page))

    target = "billing:overview" if page == "billing" else "jobs:dashboard"
    assert response["Location"] == reverse(target, args=[acme.public_id])


def test_the_header_names_the_team_in_the_url_not_the_one_chosen_last(login, alice, acme):
    client = login(alice)
    client.post(reverse("accounts:switch_team"), {"team": acme.public_id})

    page = client.get(dashboard_of(personal_team(alice))).text

    assert re.search(r'<summary aria-label="Current team">alice&#x27;s team</summary>', page)
    assert "Working in alice&#x27;s team" in page


def test_opening_another_teams_page_switches_nothing(login, alice, acme):
    client = login(alice)

    for url in (
        dashboard_of(acme),
        reverse("billing:overview", args=[acme.public_id]),
        reverse("accounts:members", args=[acme.public_id]),
    ):
        assert client.get(url).status_code == 200

    assert SESSION_KEY not in client.session
    assert client.get(reverse("dashboard"))["Location"] == dashboard_of(personal_team(alice))


def test_switching_is_remembered_and_opens_the_same_page_of_the_other_team(login, alice, acme):
    client = login(alice)
    billing = reverse("billing:overview", args=[personal_team(alice).public_id])

    response = client.post(
        reverse("accounts:switch_team"), {"team": acme.public_id, "next": billing}
    )

    assert response["Location"] == reverse("billing:overview", args=[acme.public_id])
    assert client.session[SESSION_KEY] == str(acme.public_id)
    assert client.get(reverse("dashboard"))["Location"] == dashboard_of(acme)


def test_switching_from_a_job_page_opens_the_other_teams_dashboard(login, alice, acme):
    job_page = f"/t/{personal_team(alice).public_id}/jobs/00000000-0000-0000-0000-000000000000/"

    response = login(alice).post(
        reverse("accounts:switch_team"), {"team": acme.public_id, "next": job_page}
    )

    assert response["Location"] == dashboard_of(acme)


def test_switching_to_a_team_you_are_not_in_is_refused(login, charlie, acme):
    client = login(charlie)

    response = client.post(reverse("accounts:switch_team"), {"team": acme.public_id})

    assert response.status_code == 404
    assert SESSION_KEY not in client.session
    assert client.get(reverse("dashboard"))["Location"] == dashboard_of(personal_team(charlie))


def test_switching_with_a_malformed_team_id_is_a_bad_request(login, alice):
    response = login(alice).post(reverse("accounts:switch_team"), {"team": "not-a-uuid"})

    assert response.status_code == 400


def test_switching_never_redirects_off_site(login, alice, acme):
    response = login(alice).post(
        reverse("accounts:switch_team"),
        {"team": acme.public_id, "next": "https://evil.example/"},
    )

    assert response["Location"] == dashboard_of(acme)


def test_a_removed_member_falls_back_to_their_personal_team(login, carol, acme):
    client = login(carol)
    client.post(reverse("accounts:switch_team"), {"team": acme.public_id})
    Membership.objects.filter(team=acme, user=carol).delete()

    assert client.get(dashboard_of(acme)).status_code == 404
    assert client.get(reverse("dashboard"))["Location"] == dashboard_of(personal_team(carol))


def test_someone_in_no_team_is_sent_to_the_teams_page(login, carol):
    Membership.objects.filter(user=carol).delete()

    response = login(carol).get(reverse("dashboard"))

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:teams")


def test_the_scoped_helper_finds_the_url_teams_objects(alice, acme, carol):
    carols = Membership.objects.get(team=acme, user=carol)
    request = HttpRequest()
    request.membership = Membership.objects.get(team=acme, user=alice)  # type: ignore[attr-defined]

    assert get_team_owned(request, Membership.objects.all(), pk=carols.pk) == carols  # type: ignore[arg-type]


def test_the_scoped_helper_404s_for_another_teams_object_even_for_a_member(alice, acme, carol):
    carols = Membership.objects.get(team=acme, user=carol)
    request = HttpRequest()
    request.membership = Membership.objects.get(team__is_personal=True, user=alice)  # type: ignore[attr-defined]

    with pytest.raises(Http404):
        get_team_owned(request, Membership.objects.all(), pk=carols.pk)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["/dashboard/", "/billing/"])
def test_signed_out_visitors_are_sent_to_sign_in(client, acme, url):
    for path in (url, f"/t/{acme.public_id}{url}"):
        response = client.get(path)

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))


def test_an_old_stripe_return_address_leads_to_the_credits_page(login, alice):
    response = login(alice).get("/billing/success/", {"session_id": "cs_test_before_the_move"})

    assert response["Location"] == reverse(
        "billing:overview", args=[personal_team(alice).public_id]
    )
