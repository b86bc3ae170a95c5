from collections.abc import Iterator

import pytest
import respx
from django.db import connection

from apps.accounts.models import Team
from apps.billing.models import TopUp
from apps.billing.services import price_cents
from apps.jobs.models import Job, JobState
from tests.billing.stripe_fakes import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, new_id


@pytest.fixture
def stripe_on(settings) -> None:
    """This server has Stripe keys (test mode)."""
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET


@pytest.fixture
def stripe_api(stripe_on) -> Iterator[FakeStripe]:
    """api.stripe.com, faked at the HTTP boundary; any call it does not know fails the test."""
    with respx.mock(base_url="https://api.stripe.com", assert_all_called=False) as router:
        yield FakeStripe(router)


@pytest.fixture
def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


def make_job(team: Team, *, credits: int = 10, state: JobState = JobState.QUEUED) -> Job:
    return Job.objects.create(
        team=team,
        source_url=f"https://sora.chatgpt.com/p/s_{new_id('x')[-6:]:0>32}",
        provider="simulator",
        credits=credits,
        state=state,
    )


def make_pending_topup(team: Team, *, credits: int = 1000) -> TopUp:
    """A top-up whose Checkout Session was opened (as `start_checkout` leaves it)."""
    return TopUp.objects.create(
        team=team,
        credits=credits,
        amount_cents=price_cents(credits),
        checkout_session_id=new_id("cs"),
    )
