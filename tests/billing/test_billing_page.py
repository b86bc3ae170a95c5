import csv
import io
import re

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.models import Membership, Team
from apps.billing import ledger
from tests.billing.conftest import make_job

pytestmark = pytest.mark.django_db


def in_acme(login, user, acme):
    return login(user)


def acme_url(name: str, acme) -> str:
    return reverse(name, args=[acme.public_id])


def text_of(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.text).split())


def test_the_page_shows_available_and_held_credits_and_what_they_buy(login, alice, acme):
    ledger.grant(team=acme, credits=1000, key="promo:acme", memo="Launch promo")
    ledger.hold_for_jobs(team=acme, jobs=[make_job(acme), make_job(acme)])

    page = text_of(in_acme(login, alice, acme).get(acme_url("billing:overview", acme)))

    assert "980 credits available" in page
    assert "Enough for 98 videos." in page
    assert "20 more credits are reserved for videos in progress" in page


def test_owners_see_the_packs_with_server_computed_prices(login, alice, acme, stripe_on):
    response = in_acme(login, alice, acme).get(acme_url("billing:overview", acme))

    page = text_of(response)
    assert "1,000 credits · 100 videos $5.00" in page
    assert "5,000 credits · 500 videos $25.00" in page
    assert "20,000 credits · 2,000 videos $100.00" in page
    assert f'action="{acme_url("billing:checkout", acme)}"' in response.text


def test_members_see_the_balance_but_no_buy_form(login, carol, acme, stripe_on):
    response = in_acme(login, carol, acme).get(acme_url("billing:overview", acme))

    assert response.status_code == 200
    assert "credits available" in response.text
    assert "/billing/checkout/" not in response.text
    assert "Team owners and admins buy credits." in response.text


def test_without_stripe_keys_owners_see_the_packs_and_whom_to_write_to(login, alice, acme):
    response = in_acme(login, alice, acme).get(acme_url("billing:overview", acme))

    page = text_of(response)
    assert "Credit packs" in page
    assert (
        "Prices Credits Videos Price 1,000 100 $5.00 5,000 500 $25.00 20,000 2,000 $100.00" in page
    )
    assert 'type="radio"' not in response.text  # prices to read, nothing that looks selectable
    assert "Card payments are not available here yet." in page
    assert f"write to {settings.SUPPORT_EMAIL}" in page
    assert "STRIPE_SECRET_KEY" not in page  # operator language is for staff only
    assert "/checkout/" not in response.text


def test_without_stripe_keys_staff_are_told_what_to_configure(login, alice, acme):
    alice.is_staff = True
    alice.save()

    page = text_of(in_acme(login, alice, acme).get(acme_url("billing:overview", acme)))

    assert "set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET" in page
    assert "/hooks/stripe/" in page


def test_members_are_told_which_owners_and_admins_to_ask(login, carol, acme):
    page = text_of(in_acme(login, carol, acme).get(acme_url("billing:overview", acme)))

    assert "Ask alice@example.com or bob@example.com to top up." in page
    assert "$5.00" in page


def test_a_member_with_a_monthly_limit_sees_what_is_left_and_no_way_to_buy(
    login, bob, acme, stripe_on
):
    Membership.objects.filter(team=acme, user=bob).update(monthly_credit_limit=50)

    response = in_acme(login, bob, acme).get(acme_url("billing:overview", acme))

    page = text_of(response)
    assert "Your monthly limit: 5 videos left of 5 this month." in page
    assert "/checkout/" not in response.text
    assert "Buy credits" not in page


def test_the_history_shows_one_line_per_video_with_its_outcome_and_no_codes(login, alice, acme):
    ledger.grant(team=acme, credits=1000, key="promo:acme", memo="Launch promo")
    charged, refunded, running = make_job(acme), make_job(acme), make_job(acme)
    ledger.hold_for_jobs(team=acme, jobs=[charged, refunded, running])
    ledger.capture(job=charged)
    refunded.failure_message = "The video could not be found."
    refunded.state = "failed"
    refunded.save()
    ledger.release(job=refunded, memo="Failed: kie_500")

    response = in_acme(login, alice, acme).get(acme_url("billing:overview", acme))

    rows = re.findall(r"<tr>(.*?)</tr>", response.text.split('id="ledger"')[1], re.S)
    lines = [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows[1:]]
    assert len(lines) == 4  # three videos and the grant: no hold, capture or release rows
    assert [line.split(" UTC ", 1)[1] for line in lines] == [
        f"Video {running.video_id} Reserved charged only when it is ready 10 reserved",
        f"Video {refunded.video_id} Refunded it could not be processed, nothing charged 0",
        f"Video {charged.video_id} Charged \N{MINUS SIGN}10",
        "Free credits Launch promo +1000",
    ]
    assert "kie_500" not in response.text
    assert f'href="{charged.get_absolute_url()}"' in response.text
    # A charge is a cost, not good news: it is not styled like success.
    assert '<span class="badge">Charged</span>' in response.text
    assert "badge-ok" not in response.text.split('id="ledger"')[1]


def test_the_header_shows_the_current_teams_available_credits(login, alice, acme):
    ledger.grant(team=acme, credits=1000, key="promo:acme", memo="Launch promo")
    client = login(alice)

    personal = client.get(reverse("dashboard"), follow=True).text
    team = client.get(acme.get_absolute_url()).text

    assert re.search(r'class="balance-chip"[^>]*><strong[^>]*>30</strong> available', personal)
    assert re.search(r'class="balance-chip"[^>]*><strong[^>]*>1,000</strong> available', team)


def test_the_header_balance_looks_low_below_three_videos(login, alice):
    personal = alice.memberships.get().team
    ledger.hold_for_jobs(team=personal, jobs=[make_job(personal)])

    page = login(alice).get(personal.get_absolute_url()).text

    assert re.search(r'class="balance-chip is-low"[^>]*><strong[^>]*>20</strong> available', page)


# As the email: "when fewer videos than this are left".
@pytest.mark.parametrize(("credits", "low"), [(60, True), (80, True), (90, False), (100, False)])
def test_the_balance_looks_low_in_words_below_the_teams_alert(login, alice, acme, credits, low):
    ledger.grant(team=acme, credits=credits, key="promo:acme", memo="Launch promo")
    Team.objects.filter(pk=acme.pk).update(low_balance_threshold=90)  # 9 videos
    client = in_acme(login, alice, acme)

    page = client.get(acme_url("billing:overview", acme)).text

    chip = re.search(r'<a id="balance-chip".*?</a>', page, re.S)
    assert chip
    assert ("is-low" in chip.group(0)) is low
    assert ("· low" in chip.group(0)) is low
    warning = "Running low: below the alert your team set (9 videos)."
    assert (warning in " ".join(re.sub(r"<[^>]+>", " ", page).split())) is low


def test_the_header_balance_costs_one_query(login, alice):
    client = login(alice)
    personal = alice.memberships.get().team

    with CaptureQueriesContext(connection) as queries:
        response = client.get(personal.get_absolute_url())

    assert "balance-chip" in response.text
    assert len([q for q in queries if "billing_wallet" in q["sql"]]) == 1


def test_the_history_is_paginated_and_htmx_gets_just_the_table(login, alice, acme):
    for n in range(30):
        ledger.grant(team=acme, credits=n + 1, key=f"promo:{n}", memo=f"Promo number {n + 1}")
    client = in_acme(login, alice, acme)

    first = client.get(acme_url("billing:overview", acme))
    second = client.get(
        acme_url("billing:overview", acme), {"page": 2}, headers={"HX-Request": "true"}
    )

    assert "Promo number 30" in first.text
    assert "Promo number 5<" not in first.text
    assert 'hx-get="?page=2"' in first.text
    assert 'href="?page=2#ledger"' in first.text
    assert "Promo number 5<" in second.text
    assert "Promo number 30" not in second.text
    assert second.text.lstrip().startswith('<section class="card" id="ledger"')
    assert "<html" not in second.text


@pytest.mark.parametrize("page", ["0", "-1", "abc", "99999", "1e9", ""])
def test_a_bad_page_number_never_fails(login, alice, acme, page):
    response = in_acme(login, alice, acme).get(acme_url("billing:overview", acme), {"page": page})

    assert response.status_code == 200


def test_the_csv_has_the_current_teams_entries_only(login, alice, acme):
    ledger.grant(team=acme, credits=1000, key="promo:acme", memo="=HYPERLINK(evil)")
    job = make_job(acme)
    ledger.hold_for_jobs(team=acme, jobs=[job])

    response = in_acme(login, alice, acme).get(acme_url("billing:ledger_csv", acme))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["kind"], r["amount"], r["available_change"]) for r in rows] == [
        ("grant", "1000", "1000"),
        ("hold", "10", "-10"),
    ]
    assert rows[0]["memo"] == "'=HYPERLINK(evil)"
    assert rows[1]["video"] == str(job.public_id)


def test_an_outsider_never_sees_another_teams_credits(login, charlie, acme):
    ledger.grant(team=acme, credits=1000, key="promo:acme", memo="Acme launch promo")
    client = login(charlie)

    page = client.get(acme_url("billing:overview", acme))
    export = client.get(acme_url("billing:ledger_csv", acme))
    own = client.get(reverse("billing"), follow=True).text

    assert (page.status_code, export.status_code) == (404, 404)
    assert "Acme launch promo" not in page.text + export.text + own
    assert "Welcome credits" in own


def test_signed_out_visitors_are_sent_to_sign_in(client, acme):
    for name in ("billing:overview", "billing:ledger_csv"):
        response = client.get(acme_url(name, acme))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))
