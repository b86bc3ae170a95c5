"""The team's webhook pages: owners and admins add, change, rotate, test, resend and remove;
members cannot; outsiders do not see that they exist."""

import pytest
from django.urls import reverse

from apps.accounts.models import TeamEvent, TeamEventKind
from apps.webhooks import sending
from apps.webhooks.models import Delivery, DeliveryState, Endpoint, EventType
from tests.factories import make_endpoint
from tests.webhooks.receiver import Answer

pytestmark = pytest.mark.django_db


def endpoints_url(team) -> str:
    return reverse("webhooks:endpoints", args=[team.public_id])


def action_url(endpoint: Endpoint, name: str) -> str:
    return reverse(f"webhooks:{name}", args=[endpoint.team.public_id, endpoint.public_id])


def test_an_owner_adds_an_endpoint_and_sees_its_secret_once(login, acme, alice, receiver):
    client = login(alice)
    response = client.post(
        endpoints_url(acme),
        {"url": receiver.url(), "events": [EventType.JOB_SUCCEEDED, EventType.CREDITS_LOW]},
    )

    endpoint = Endpoint.objects.get(team=acme)
    assert response.status_code == 302
    assert response["Location"] == endpoint.get_absolute_url()
    assert endpoint.url == receiver.url()
    assert endpoint.events == ["job.succeeded", "credits.low"]
    assert endpoint.created_by == alice
    page = client.get(endpoint.get_absolute_url())
    assert endpoint.secret in page.text
    assert "it is not shown again" in page.text
    assert page["Cache-Control"] == "no-store"
    later = client.get(endpoint.get_absolute_url())
    assert endpoint.secret not in later.text
    assert "no-store" not in later.get("Cache-Control", "")
    event = TeamEvent.objects.get(team=acme, kind=TeamEventKind.WEBHOOK_ADDED)
    assert (event.actor_email, event.detail) == ("alice@example.com", receiver.url())


def test_an_address_in_a_private_network_is_refused_with_a_clear_message(login, acme, bob):
    response = login(bob).post(
        endpoints_url(acme), {"url": "http://10.0.0.5/hook", "events": [EventType.JOB_FAILED]}
    )

    assert response.status_code == 400
    assert "This address points into a private network" in response.text
    assert not Endpoint.objects.exists()
    assert not TeamEvent.objects.filter(kind=TeamEventKind.WEBHOOK_ADDED).exists()


def test_plain_http_is_refused_in_production(login, acme, alice, settings):
    settings.WEBHOOK_HTTPS_ONLY = True
    response = login(alice).post(
        endpoints_url(acme), {"url": "http://hooks.example.com/x", "events": ["job.failed"]}
    )

    assert response.status_code == 400
    assert "Use an https:// address" in response.text
    assert not Endpoint.objects.exists()


def test_an_endpoint_needs_at_least_one_known_event(login, acme, alice, receiver):
    client = login(alice)
    none = client.post(endpoints_url(acme), {"url": receiver.url()})
    unknown = client.post(endpoints_url(acme), {"url": receiver.url(), "events": ["job.eaten"]})

    assert "Choose at least one event." in none.text
    assert unknown.status_code == 400
    assert not Endpoint.objects.exists()


def test_the_list_shows_each_endpoint_and_whether_it_is_on(login, acme, alice):
    make_endpoint(acme, "https://hooks.example.com/a", [EventType.JOB_FAILED])
    off = make_endpoint(acme, "https://hooks.example.com/b")
    Endpoint.objects.filter(pk=off.pk).update(enabled=False, disabled_reason="It answered 410.")

    page = login(alice).get(endpoints_url(acme))

    assert page.status_code == 200
    assert "https://hooks.example.com/a" in page.text
    assert "It answered 410." in page.text
    assert ">Webhooks<" in page.text  # the team's tab


def test_a_member_cannot_manage_webhooks(login, acme, carol):
    endpoint = make_endpoint(acme, "https://hooks.example.com/a")
    client = login(carol)

    assert client.get(endpoints_url(acme)).status_code == 403
    assert client.get(endpoint.get_absolute_url()).status_code == 403
    posted = client.post(endpoints_url(acme), {"url": "https://x.example", "events": "job.failed"})
    assert posted.status_code == 403
    assert client.post(action_url(endpoint, "rotate_secret")).status_code == 403
    assert client.post(action_url(endpoint, "send_test_event")).status_code == 403
    assert Endpoint.objects.count() == 1
    assert not Delivery.objects.exists()
    assert ">Webhooks<" not in client.get(reverse("accounts:members", args=[acme.public_id])).text


def test_an_outsider_gets_404_everywhere(login, acme, charlie):
    endpoint = make_endpoint(acme, "https://hooks.example.com/a")
    secret = endpoint.secret
    client = login(charlie)

    assert client.get(endpoints_url(acme)).status_code == 404
    assert client.get(endpoint.get_absolute_url()).status_code == 404
    for name in ("rotate_secret", "remove_endpoint", "enable_endpoint", "send_test_event"):
        assert client.post(action_url(endpoint, name)).status_code == 404
    endpoint.refresh_from_db()
    assert endpoint.secret == secret


def test_another_teams_endpoint_under_my_team_is_not_found(login, acme, charlie):
    theirs = make_endpoint(acme, "https://hooks.example.com/a")
    mine = charlie.memberships.get().team
    url = reverse("webhooks:endpoint", args=[mine.public_id, theirs.public_id])

    assert login(charlie).get(url).status_code == 404


def test_rotating_asks_first_then_shows_the_new_secret_once(login, acme, alice):
    endpoint = make_endpoint(acme, "https://hooks.example.com/a")
    old = endpoint.secret
    client = login(alice)

    question = client.get(action_url(endpoint, "rotate_secret"))
    assert "For the next day, messages carry two signatures" in question.text
    assert Endpoint.objects.get(pk=endpoint.pk).secret == old

    response = client.post(action_url(endpoint, "rotate_secret"))

    endpoint.refresh_from_db()
    assert response.status_code == 302
    assert endpoint.previous_secret == old
    assert endpoint.secret != old
    assert endpoint.signing_secrets() == [endpoint.secret, old]
    shown = client.get(endpoint.get_absolute_url())
    assert shown["Cache-Control"] == "no-store"
    page = shown.text
    assert endpoint.secret in page
    assert old not in page
    assert "The previous secret still signs too" in page
    assert TeamEvent.objects.filter(kind=TeamEventKind.WEBHOOK_SECRET_ROTATED).count() == 1


def test_changing_the_address_and_events_is_saved_and_logged(login, acme, alice, receiver):
    endpoint = make_endpoint(acme, receiver.url("/a"))

    login(alice).post(
        endpoint.get_absolute_url(),
        {"url": receiver.url("/b"), "events": [EventType.BATCH_FINISHED]},
    )

    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events) == (receiver.url("/b"), ["batch.finished"])
    event = TeamEvent.objects.get(kind=TeamEventKind.WEBHOOK_CHANGED)
    assert event.detail == f"{receiver.url('/b')}: batch.finished"


def test_a_change_to_a_private_address_is_refused_and_changes_nothing(login, acme, alice):
    endpoint = make_endpoint(acme, "https://hooks.example.com/a", [EventType.JOB_FAILED])

    response = login(alice).post(
        endpoint.get_absolute_url(),
        {"url": "http://169.254.169.254/latest/", "events": [EventType.BATCH_FINISHED]},
    )

    assert response.status_code == 400
    assert "This address points into a private network" in response.text
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events) == ("https://hooks.example.com/a", ["job.failed"])
    assert not TeamEvent.objects.filter(kind=TeamEventKind.WEBHOOK_CHANGED).exists()


def test_removing_asks_first_and_takes_the_log_with_it(login, acme, bob):
    endpoint = make_endpoint(acme, "https://hooks.example.com/a")
    Delivery.objects.create(endpoint=endpoint, event_type="job.failed", payload={})
    client = login(bob)

    assert (
        "Remove https://hooks.example.com/a?"
        in client.get(action_url(endpoint, "remove_endpoint")).text
    )
    response = client.post(action_url(endpoint, "remove_endpoint"))

    assert response["Location"] == endpoints_url(acme)
    assert not Endpoint.objects.exists()
    assert not Delivery.objects.exists()
    event = TeamEvent.objects.get(kind=TeamEventKind.WEBHOOK_REMOVED)
    assert (event.actor_email, event.detail) == ("bob@example.com", "https://hooks.example.com/a")


def test_a_test_event_goes_out_and_its_answer_shows_in_the_log(login, acme, alice, receiver):
    receiver.answer(Answer(status=418, body=b"I'm a teapot"))
    endpoint = make_endpoint(acme, receiver.url(), [EventType.JOB_FAILED])
    client = login(alice)

    client.post(action_url(endpoint, "send_test_event"))
    [delivery] = Delivery.objects.filter(endpoint=endpoint)
    sending.deliver(delivery_id=delivery.pk)  # what the worker does

    message = receiver.last().verify(endpoint.secret)
    assert message["type"] == "webhook.test"
    assert message["data"]["message"] == "A test event sent by alice@example.com."
    log = client.get(endpoint.get_absolute_url()).text
    assert "webhook.test" in log
    assert "Answered 418." in log
    assert "I&#x27;m a teapot" in log


def test_resend_sends_the_same_message_again_as_a_new_delivery(login, acme, alice, receiver):
    receiver.answer(*[500] * 8)
    endpoint = make_endpoint(acme, receiver.url())
    failed = Delivery.objects.create(
        endpoint=endpoint,
        event_type=EventType.JOB_FAILED,
        payload={"job": {"id": "x"}},
        state=DeliveryState.FAILED,
        attempts=8,
    )
    receiver.answers.clear()

    response = login(alice).post(
        reverse("webhooks:resend_delivery", args=[acme.public_id, endpoint.public_id, failed.pk])
    )
    assert response.status_code == 302
    again = Delivery.objects.exclude(pk=failed.pk).get()
    assert sending.deliver(delivery_id=again.pk) == DeliveryState.SUCCEEDED

    arrived = receiver.last()
    assert arrived.headers["webhook-id"] == failed.message_id
    assert arrived.verify(endpoint.secret)["data"] == {"job": {"id": "x"}}
    failed.refresh_from_db()
    assert failed.state == DeliveryState.FAILED  # its own record stays as it was


def test_a_delivery_of_another_endpoint_cannot_be_resent_through_mine(login, acme, alice, charlie):
    mine = make_endpoint(acme, "https://hooks.example.com/a")
    theirs = make_endpoint(charlie.memberships.get().team, "https://hooks.example.com/b")
    delivery = Delivery.objects.create(endpoint=theirs, event_type="job.failed", payload={})

    url = reverse("webhooks:resend_delivery", args=[acme.public_id, mine.public_id, delivery.pk])
    assert login(alice).post(url).status_code == 404
    assert Delivery.objects.count() == 1


def test_an_endpoint_turned_off_is_turned_back_on_by_a_manager(login, acme, alice):
    endpoint = make_endpoint(acme, "https://hooks.example.com/a")
    sending.disable(endpoint=endpoint, reason="The receiver answered 410 Gone.")
    client = login(alice)
    assert "This endpoint is off" in client.get(endpoint.get_absolute_url()).text

    client.post(action_url(endpoint, "send_test_event"))
    assert not Delivery.objects.exists()  # nothing is sent to an endpoint that is off

    client.post(action_url(endpoint, "enable_endpoint"))

    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since) == (True, "", None)
    assert TeamEvent.objects.filter(kind=TeamEventKind.WEBHOOK_ENABLED).count() == 1


def test_with_htmx_the_log_refreshes_alone(login, acme, alice):
    endpoint = make_endpoint(acme, "https://hooks.example.com/a")
    Delivery.objects.create(endpoint=endpoint, event_type="credits.low", payload={})

    response = login(alice).get(endpoint.get_absolute_url(), headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section class="card" id="deliveries"')
    assert "credits.low" in response.text
    assert "<html" not in response.text
