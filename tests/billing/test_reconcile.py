import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.billing import ledger
from apps.billing.models import TopUp, TopUpStatus, Wallet
from apps.jobs.models import Job, JobState
from tests.billing.conftest import make_job, make_pending_topup

pytestmark = pytest.mark.django_db


def reconcile(capsys) -> str:
    call_command("reconcile")
    return capsys.readouterr().out


def drift(capsys) -> str:
    with pytest.raises(CommandError) as failed:
        call_command("reconcile")
    return capsys.readouterr().err + str(failed.value)


@pytest.fixture
def busy_acme(acme):
    """Acme after a little of everything: grant, top-up, jobs captured, released and in flight."""
    ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")
    topup = make_pending_topup(acme)
    ledger.credit_topup(topup=topup)
    TopUp.objects.filter(pk=topup.pk).update(status=TopUpStatus.PAID)
    done, failed, running = make_job(acme), make_job(acme), make_job(acme)
    ledger.hold_for_jobs(team=acme, jobs=[done, failed, running])
    ledger.capture(job=done)
    ledger.release(job=failed)
    Job.objects.filter(pk=done.pk).update(state=JobState.SUCCEEDED)
    Job.objects.filter(pk=failed.pk).update(state=JobState.FAILED)
    ledger.clawback(team=acme, credits=50, key="clawback:re_1", topup=topup, memo="Refund")
    return acme


def test_a_consistent_ledger_reconciles(capsys, busy_acme, charlie):
    output = reconcile(capsys)

    # Alice's, Bob's, Carol's and Charlie's personal teams, and Acme.
    assert output.strip() == "5 wallets, 12 entries, OK"


def test_a_wallet_changed_behind_the_ledgers_back_is_drift(capsys, busy_acme):
    Wallet.objects.filter(team=busy_acme).update(balance=1_000_000)

    report = drift(capsys)

    assert f"Team {busy_acme.pk}: wallet says balance 1000000, held 10;" in report
    assert "ledger entries add up to balance 1040, held 10" in report
    assert "1 problem found." in report


def test_a_finished_job_whose_hold_was_never_settled_is_drift(capsys, acme):
    ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")
    job = make_job(acme)
    ledger.hold_for_jobs(team=acme, jobs=[job])
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED)

    assert f"Job {job.pk} is succeeded but its hold was never captured or released." in drift(
        capsys
    )


def test_a_paid_top_up_that_was_never_credited_is_drift(capsys, acme):
    topup = make_pending_topup(acme)
    TopUp.objects.filter(pk=topup.pk).update(status=TopUpStatus.PAID)

    assert f"Paid top-up {topup.public_id} was credited 0 times." in drift(capsys)


def test_a_credited_top_up_not_marked_paid_is_drift(capsys, acme):
    topup = make_pending_topup(acme)
    ledger.credit_topup(topup=topup)

    assert f"Top-up {topup.public_id} is pending but was credited." in drift(capsys)


def test_a_team_without_a_wallet_is_drift(capsys, acme):
    Wallet.objects.filter(team=acme).delete()

    assert f"Team {acme.pk} (Acme) has no wallet." in drift(capsys)
