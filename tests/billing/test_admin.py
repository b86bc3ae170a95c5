import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from apps.accounts.models import User
from apps.billing import ledger
from apps.billing.models import EntryKind, LedgerEntry, StripeEvent, TopUp, TopUpStatus, Wallet
from apps.ops import figures

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser("ops@unmark.example", "a-long-unusual-pass-1")


def credit_form(client, wallet):
    page = client.get(reverse("admin:billing_wallet_credit", args=[wallet.pk]))
    found = re.search(r'name="submission" value="([0-9a-f-]{36})"', page.text)
    assert found, "the form carries a one-time submission id"
    return found.group(1)


def test_staff_can_grant_credits_with_a_reason(login, staff, acme):
    client = login(staff)
    wallet = Wallet.objects.get(team=acme)
    submission = credit_form(client, wallet)

    response = client.post(
        reverse("admin:billing_wallet_credit", args=[wallet.pk]),
        {
            "action": "grant",
            "credits": "500",
            "reason": "Trial for a school",
            "submission": submission,
        },
    )

    assert response.status_code == 302
    entry = LedgerEntry.objects.get(team=acme)
    assert (entry.kind, entry.amount, entry.actor, entry.memo) == (
        EntryKind.GRANT,
        500,
        staff,
        "Trial for a school",
    )
    assert Wallet.objects.get(team=acme).balance == 500


def test_a_double_submitted_grant_is_recorded_once(login, staff, acme):
    client = login(staff)
    wallet = Wallet.objects.get(team=acme)
    submission = credit_form(client, wallet)
    form = {"action": "grant", "credits": "500", "reason": "Trial", "submission": submission}

    client.post(reverse("admin:billing_wallet_credit", args=[wallet.pk]), form)
    client.post(reverse("admin:billing_wallet_credit", args=[wallet.pk]), form)

    assert Wallet.objects.get(team=acme).balance == 500


def test_staff_can_adjust_down_with_a_reason(login, staff, acme):
    ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")
    client = login(staff)
    wallet = Wallet.objects.get(team=acme)

    client.post(
        reverse("admin:billing_wallet_credit", args=[wallet.pk]),
        {
            "action": "adjust",
            "credits": "-40",
            "reason": "Duplicate grant",
            "submission": credit_form(client, wallet),
        },
    )

    assert Wallet.objects.get(team=acme).balance == 60
    assert LedgerEntry.objects.get(kind=EntryKind.ADJUSTMENT).actor == staff


@pytest.mark.parametrize(
    ("action", "credits", "reason"),
    [
        ("grant", "500", ""),
        ("grant", "-5", "Oops"),
        ("adjust", "0", "Nothing"),
        ("grant", "abc", "x"),
    ],
)
def test_a_grant_or_adjustment_without_reason_or_credits_is_refused(
    login, staff, acme, action, credits, reason
):
    client = login(staff)
    wallet = Wallet.objects.get(team=acme)

    response = client.post(
        reverse("admin:billing_wallet_credit", args=[wallet.pk]),
        {
            "action": action,
            "credits": credits,
            "reason": reason,
            "submission": credit_form(client, wallet),
        },
    )

    assert response.status_code == 200
    assert not LedgerEntry.objects.filter(team=acme).exists()


def test_staff_without_the_permission_cannot_grant(login, acme):
    clerk = User.objects.create_user("clerk@unmark.example", is_staff=True)
    wallet = Wallet.objects.get(team=acme)

    response = login(clerk).post(
        reverse("admin:billing_wallet_credit", args=[wallet.pk]),
        {"action": "grant", "credits": "500", "reason": "Me", "submission": "0" * 32},
    )

    assert response.status_code == 403
    assert Wallet.objects.get(team=acme).balance == 0


def test_the_ledger_is_read_only_in_the_admin(login, staff, acme):
    entry = ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")
    client = login(staff)

    change_page = client.get(reverse("admin:billing_ledgerentry_change", args=[entry.pk]))
    edit = client.post(
        reverse("admin:billing_ledgerentry_change", args=[entry.pk]), {"amount": "999"}
    )
    delete = client.post(
        reverse("admin:billing_ledgerentry_delete", args=[entry.pk]), {"post": "yes"}
    )
    add = client.get(reverse("admin:billing_ledgerentry_add"))

    assert change_page.status_code == 200
    assert 'name="amount"' not in change_page.text
    assert edit.status_code == 403
    assert delete.status_code == 403
    assert add.status_code == 403
    entry.refresh_from_db()
    assert entry.amount == 100


def test_wallet_numbers_cannot_be_edited_in_the_admin(login, staff, acme):
    wallet = Wallet.objects.get(team=acme)

    response = login(staff).post(
        reverse("admin:billing_wallet_change", args=[wallet.pk]), {"balance": "1000000"}
    )

    assert response.status_code == 403
    assert Wallet.objects.get(team=acme).balance == 0


def test_stripe_events_show_their_payload_and_error(login, staff):
    stored = StripeEvent.objects.create(
        event_id="evt_test_1",
        type="charge.refunded",
        payload={"id": "evt_test_1", "data": {"object": {"id": "ch_test_1"}}},
        processing_error="TopUpNotFound: No paid top-up has PaymentIntent pi_1 (yet).",
    )
    client = login(staff)

    listing = client.get(reverse("admin:billing_stripeevent_changelist"))
    detail = client.get(reverse("admin:billing_stripeevent_change", args=[stored.pk]))

    assert "evt_test_1" in listing.text
    assert "&quot;ch_test_1&quot;" in detail.text
    assert "TopUpNotFound" in detail.text


def test_staff_can_unfreeze_a_team_after_a_dispute(login, staff, acme):
    ledger.freeze(team=acme, reason="Payment dispute dp_1")
    wallet = Wallet.objects.get(team=acme)

    login(staff).post(
        reverse("admin:billing_wallet_changelist"),
        {"action": "unfreeze", "_selected_action": [wallet.pk]},
    )

    assert not Wallet.objects.get(team=acme).is_frozen


def test_staff_without_the_permission_are_not_offered_unfreeze_and_cannot_post_it(login, acme):
    ledger.freeze(team=acme, reason="Payment dispute dp_1")
    wallet = Wallet.objects.get(team=acme)
    clerk = User.objects.create_user("clerk@unmark.example", is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(codename="view_wallet"))
    client = login(clerk)

    page = client.get(reverse("admin:billing_wallet_changelist"))
    client.post(
        reverse("admin:billing_wallet_changelist"),
        {"action": "unfreeze", "_selected_action": [wallet.pk]},
    )

    assert page.status_code == 200
    assert 'value="unfreeze"' not in page.text
    assert Wallet.objects.get(team=acme).is_frozen


# --- A payment received outside Stripe ---------------------------------------------------------
def record_payment(client, wallet, amount: str, reference: str):
    return client.post(
        reverse("admin:billing_wallet_payment", args=[wallet.pk]),
        {"amount": amount, "reference": reference},
    )


def test_staff_record_a_bank_transfer_as_a_paid_top_up_seen_by_the_team_and_the_figures(
    login, staff, acme, alice
):
    wallet = Wallet.objects.get(team=acme)

    response = record_payment(login(staff), wallet, "50.00", "BANK-2026-0042")

    assert response.status_code == 302
    topup = TopUp.objects.get(team=acme)
    assert (topup.status, topup.credits, topup.amount_cents, topup.reference) == (
        TopUpStatus.PAID,
        10_000,
        5000,
        "BANK-2026-0042",
    )
    entry = LedgerEntry.objects.get(team=acme)
    assert (entry.kind, entry.amount, entry.topup) == (EntryKind.TOPUP, 10_000, topup)
    assert Wallet.objects.get(team=acme).balance == 10_000
    money = figures.build(figures.Period.last_days(1)).money
    assert (money.topups, money.topups_micros) == (1, 50_000_000)
    page = login(alice).get(reverse("billing:overview", args=[acme.public_id])).text
    topups = page.split('id="topups-title"')[1].split("</section>")[0]
    assert "No top-ups yet" not in topups
    assert "$50.00" in topups
    assert "Payment received, reference BANK-2026-0042" in topups
    assert "Free credits" not in page


def test_a_payment_recorded_twice_by_its_reference_adds_credits_once(login, staff, acme):
    wallet = Wallet.objects.get(team=acme)
    client = login(staff)

    record_payment(client, wallet, "50.00", "BANK-7")
    again = record_payment(client, wallet, "50.00", " BANK-7 ")

    assert again.status_code == 302
    assert TopUp.objects.count() == 1
    assert LedgerEntry.objects.filter(team=acme).count() == 1
    assert Wallet.objects.get(team=acme).balance == 10_000


def test_a_reference_already_used_for_another_amount_is_refused_and_changes_nothing(
    login, staff, acme
):
    wallet = Wallet.objects.get(team=acme)
    client = login(staff)
    record_payment(client, wallet, "50.00", "BANK-7")

    response = record_payment(client, wallet, "80.00", "BANK-7")

    assert response.status_code == 200
    assert "Reference BANK-7 was already recorded: $50.00 for Acme." in response.text
    assert TopUp.objects.count() == 1
    assert Wallet.objects.get(team=acme).balance == 10_000


@pytest.mark.parametrize(
    ("amount", "reference", "error"),
    [
        ("50", "", "This field is required."),
        ("50", "   ", "This field is required."),
        ("0", "BANK-8", "Ensure this value is greater than or equal to 0.01."),
        ("0.001", "BANK-8", "Ensure that there are no more than 2 decimal places."),
        ("fifty", "BANK-8", "Enter a number."),
    ],
)
def test_a_payment_without_a_reference_or_amount_is_refused(
    login, staff, acme, amount, reference, error
):
    response = record_payment(login(staff), Wallet.objects.get(team=acme), amount, reference)

    assert response.status_code == 200
    assert error in response.text
    assert not TopUp.objects.exists()
    assert not LedgerEntry.objects.filter(team=acme).exists()


def test_staff_without_the_credit_permission_cannot_record_a_payment(login, acme):
    clerk = User.objects.create_user("clerk@unmark.example", "a-long-unusual-pass-2")
    clerk.is_staff = True
    clerk.save()

    response = record_payment(login(clerk), Wallet.objects.get(team=acme), "50.00", "BANK-9")

    assert response.status_code == 403
    assert not TopUp.objects.exists()
