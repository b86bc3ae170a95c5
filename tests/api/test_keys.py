"""API keys: shown once, stored as a prefix and a keyed hash, scoped, revocable at once, made
only by owners and admins (on the team page or by `create_api_key`), and in the activity log."""

import hashlib
import hmac
import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from apps.accounts.models import Membership, TeamEvent
from apps.api.keys import create_key
from apps.api.models import ApiKey
from apps.billing import ledger
from apps.billing.models import LedgerEntry
from apps.jobs.models import Job, JobState, Upload
from tests.api.conftest import GOOD_LINK, OTHER_LINK, ApiClient, key_for, membership
from tests.api.test_jobs_api import fund


def test_a_key_is_recognisable_and_only_its_keyed_hash_is_stored(acme, alice, settings):
    key, raw_key = create_key(membership=membership(alice, acme), name="CI", read_only=False)

    assert raw_key.startswith("um_test_")
    assert len(raw_key) > 40
    assert raw_key.startswith(key.prefix)
    assert raw_key not in {key.prefix, key.digest}
    expected = hmac.new(settings.API_KEY_HASH_KEY.encode(), raw_key.encode(), hashlib.sha256)
    assert key.digest == expected.hexdigest()


def test_production_keys_are_live_keys(acme, alice, settings):
    settings.PRODUCTION = True

    _, raw_key = create_key(membership=membership(alice, acme), name="CI", read_only=False)

    assert raw_key.startswith("um_live_")
    assert ApiClient(raw_key).get("/balance").status_code == 200


def test_a_key_with_a_wrong_secret_is_refused(acme, alice):
    raw_key = key_for(alice, acme)
    forged = raw_key[:-4] + ("aaaa" if not raw_key.endswith("aaaa") else "bbbb")

    response = ApiClient(forged).get("/balance")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["type"] == "urn:unmark:problem:unauthenticated"


def test_no_key_is_refused(db):
    response = Client().get("/api/v1/jobs")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_a_signed_in_browser_session_is_no_key(acme, alice, login):
    browser = login(alice)

    assert browser.get("/api/v1/balance").status_code == 401
    refused = browser.post(
        "/api/v1/jobs", {"links": []}, content_type="application/json"
    )  # what a forged cross-site form would send, cookies and all
    assert refused.status_code == 401


def test_a_read_only_key_reads_but_changes_nothing(acme, alice, acme_api):
    fund(acme, 100)
    [job] = acme_api.post("/jobs", {"links": [GOOD_LINK]}).json()["jobs"]
    entries = LedgerEntry.objects.count()
    reader = ApiClient(key_for(alice, acme, read_only=True))

    assert reader.get("/jobs").status_code == 200
    assert reader.get("/balance").status_code == 200
    refused = reader.post("/jobs", {"links": [OTHER_LINK]})
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:unmark:problem:read-only-key"
    assert reader.post("/uploads").status_code == 403
    cancel = reader.post(f"/jobs/{job['id']}/cancel")
    assert cancel.status_code == 403
    assert cancel.json()["type"] == "urn:unmark:problem:read-only-key"

    [kept] = Job.objects.all()
    assert kept.state == JobState.QUEUED
    assert LedgerEntry.objects.count() == entries
    assert ledger.open_wallet(acme).held == 10
    assert not Upload.objects.exists()


def test_a_revoked_key_stops_working_at_once(acme, alice, bob, login):
    raw_key = key_for(alice, acme)
    client = ApiClient(raw_key)
    assert client.get("/balance").status_code == 200
    key = ApiKey.objects.get()

    response = login(bob).post(f"/t/{acme.public_id}/api-keys/{key.pk}/revoke/")

    assert response.status_code == 302
    assert client.get("/balance").status_code == 401
    key.refresh_from_db()
    assert key.revoked_by == bob


def test_a_key_stops_working_when_its_maker_leaves_the_team(acme, bob):
    client = ApiClient(key_for(bob, acme))

    Membership.objects.filter(team=acme, user=bob).delete()

    assert client.get("/balance").status_code == 401


def test_a_maker_leaving_while_a_request_runs_stops_its_key_there(acme, bob):
    from apps.api.keys import KeyStopped, find_principal

    principal = find_principal(key_for(bob, acme))
    assert principal is not None

    Membership.objects.filter(team=acme, user=bob).delete()

    with pytest.raises(KeyStopped):
        principal.membership  # noqa: B018


def test_staff_revoke_a_key_in_the_admin(acme, alice, admin_client):
    client = ApiClient(key_for(alice, acme))
    key = ApiKey.objects.get()

    admin_client.post("/admin/api/apikey/", {"action": "revoke", "_selected_action": [key.pk]})

    assert client.get("/balance").status_code == 401
    assert TeamEvent.objects.filter(team=acme, kind="api_key_revoked").exists()


def test_using_a_key_records_when(acme, alice):
    client = ApiClient(key_for(alice, acme))
    assert ApiKey.objects.get().last_used_at is None

    client.get("/balance")

    assert ApiKey.objects.get().last_used_at is not None


# --- The team page ------------------------------------------------------------------------------
def test_an_owner_makes_a_key_and_sees_it_once(acme, alice, login):
    client = login(alice)

    made = client.post(f"/t/{acme.public_id}/api-keys/new/", {"name": "Zapier"})
    shown = client.get(made["Location"])
    later = client.get(made["Location"])

    assert made.status_code == 302
    assert made["Location"] == f"/t/{acme.public_id}/api-keys/"
    assert shown["Cache-Control"] == "no-store"
    raw_key = shown.context["new_key"]
    assert raw_key.startswith("um_test_")
    assert raw_key in shown.content.decode()
    assert ApiClient(raw_key).get("/balance").status_code == 200
    page = later.content.decode()
    assert "Zapier" in page
    assert raw_key not in page
    assert f"{ApiKey.objects.get().prefix}…" in page
    assert ApiKey.objects.count() == 1


def test_a_new_key_is_shown_only_on_its_own_teams_page(acme, alice, login):
    client = login(alice)
    own = alice.memberships.get(team__is_personal=True).team

    client.post(f"/t/{acme.public_id}/api-keys/new/", {"name": "Zapier"})
    elsewhere = client.get(f"/t/{own.public_id}/api-keys/")

    assert elsewhere.context["new_key"] == ""
    assert client.get(f"/t/{acme.public_id}/api-keys/").context["new_key"].startswith("um_")


def test_an_admin_makes_a_read_only_key(acme, bob, login):
    login(bob).post(f"/t/{acme.public_id}/api-keys/new/", {"name": "Reports", "read_only": "on"})

    key = ApiKey.objects.get()
    assert (key.name, key.read_only, key.created_by) == ("Reports", True, bob)


def test_a_key_needs_a_name(acme, alice, login):
    response = login(alice).post(f"/t/{acme.public_id}/api-keys/new/", {"name": ""})

    assert response.status_code == 400
    assert ApiKey.objects.count() == 0


def test_a_member_sees_the_keys_names_but_cannot_make_or_revoke_one(acme, alice, carol, login):
    key_for(alice, acme, name="Pipeline")
    key = ApiKey.objects.get()
    client = login(carol)

    page = client.get(f"/t/{acme.public_id}/api-keys/")
    made = client.post(f"/t/{acme.public_id}/api-keys/new/", {"name": "Mine"})
    revoked = client.post(f"/t/{acme.public_id}/api-keys/{key.pk}/revoke/")

    assert page.status_code == 200
    assert "Pipeline" in page.content.decode()
    assert "Make the key" not in page.content.decode()
    assert (made.status_code, revoked.status_code) == (403, 403)
    assert ApiKey.objects.live().count() == 1


def test_an_outsider_gets_404_for_the_keys_page_and_its_actions(acme, alice, charlie, login):
    key_for(alice, acme)
    key = ApiKey.objects.get()
    client = login(charlie)

    assert client.get(f"/t/{acme.public_id}/api-keys/").status_code == 404
    assert client.post(f"/t/{acme.public_id}/api-keys/new/", {"name": "x"}).status_code == 404
    assert client.post(f"/t/{acme.public_id}/api-keys/{key.pk}/revoke/").status_code == 404
    assert ApiKey.objects.live().count() == 1


def test_another_teams_key_cannot_be_revoked_from_your_team_page(acme, alice, charlie, login):
    charlies_team = charlie.memberships.get().team
    key_for(charlie, charlies_team)
    key = ApiKey.objects.get()

    response = login(alice).post(f"/t/{acme.public_id}/api-keys/{key.pk}/revoke/")

    assert response.status_code == 404
    assert ApiKey.objects.live().count() == 1


def test_revoking_asks_first(acme, alice, login):
    key_for(alice, acme, name="Old")
    key = ApiKey.objects.get()

    page = login(alice).get(f"/t/{acme.public_id}/api-keys/{key.pk}/revoke/")

    assert "Revoke the API key “Old”?" in page.content.decode()
    assert ApiKey.objects.live().count() == 1


def test_making_and_revoking_keys_is_in_the_activity_log(acme, alice, login):
    client = login(alice)
    client.post(f"/t/{acme.public_id}/api-keys/new/", {"name": "Zapier"})
    key = ApiKey.objects.get()
    client.post(f"/t/{acme.public_id}/api-keys/{key.pk}/revoke/")

    events = list(TeamEvent.objects.filter(team=acme, kind__startswith="api_key"))
    activity = client.get(f"/t/{acme.public_id}/activity/").content.decode()

    assert [(e.kind, e.actor) for e in events] == [
        ("api_key_revoked", alice),
        ("api_key_created", alice),
    ]
    assert "API key created" in activity
    assert "API key revoked" in activity
    assert f"Zapier ({key.prefix}…, read and write)" in activity


# --- The management command ---------------------------------------------------------------------
def test_the_command_prints_a_working_key_once(acme, alice):
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "create_api_key", "--team", str(acme.public_id), "--name", "CLI", stdout=out, stderr=err
    )

    raw_key = out.getvalue().strip()
    assert raw_key.startswith("um_test_")
    assert "alice@example.com" in err.getvalue()
    key = ApiKey.objects.get()
    assert (key.name, key.created_by, key.read_only) == ("CLI", alice, False)
    assert ApiClient(raw_key).get("/jobs").status_code == 200
    assert TeamEvent.objects.filter(team=acme, kind="api_key_created").count() == 1


def test_the_command_finds_a_team_by_name_and_makes_read_only_keys_as_an_admin(acme, bob):
    out = io.StringIO()

    call_command(
        "create_api_key", "--team", "acme", "--name", "R", "--read-only", "--as", "bob@example.com",
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip

    key = ApiKey.objects.get()
    assert (key.read_only, key.created_by) == (True, bob)


@pytest.mark.parametrize(
    ("team", "maker", "message"),
    [
        ("nowhere", "", "No team 'nowhere'."),
        ("Acme", "carol@example.com", "carol@example.com is not an owner or admin of Acme."),
    ],
)
def test_the_command_refuses_what_it_cannot_do(acme, team, maker, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_api_key", "--team", team, "--name", "x", "--as", maker)
    assert ApiKey.objects.count() == 0
