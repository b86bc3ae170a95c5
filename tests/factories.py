"""Test data made the way the app makes it (people get their personal team on sign-up)."""

from datetime import datetime, timedelta

import factory
from allauth.account.models import EmailAddress
from django.utils import timezone

from apps.accounts.models import (
    INVITATION_LIFETIME,
    Invitation,
    Membership,
    Role,
    Team,
    User,
    hash_token,
)
from apps.accounts.services import create_team
from apps.billing.welcome import onboard_new_user
from apps.jobs.models import Job, JobState
from apps.removal.base import InputKind
from apps.removal.models import PoolTask, SwcServer
from apps.removal.registry import get_provider
from apps.webhooks.models import Endpoint, EventType

PASSWORD = "correct-horse-battery-staple"
INVITATION_TOKEN = "an-invitation-token"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def personal_team(user: User, create: bool, extracted: object, **kwargs: object) -> None:
        if create and extracted is not False:
            onboard_new_user(user=user)


def make_team(name: str, owner: User) -> Team:
    return create_team(name=name, owner=owner)


def add_member(team: Team, user: User, role: Role = Role.MEMBER) -> Membership:
    return Membership.objects.create(team=team, user=user, role=role)


def confirm_email(user: User, email: str | None = None, *, verified: bool = True) -> EmailAddress:
    """Gives `user` an email address as allauth records it: confirmed, unless told otherwise."""
    return EmailAddress.objects.create(
        user=user, email=email or user.email, verified=verified, primary=email is None
    )


def make_invitation(
    team: Team,
    email: str,
    *,
    invited_by: User | None,
    role: Role = Role.MEMBER,
    token: str = INVITATION_TOKEN,
) -> Invitation:
    """An invitation as `invite()` leaves it, minus the email; `token` is the link's secret."""
    now = timezone.now()
    return Invitation.objects.create(
        team=team,
        email=email,
        role=role,
        invited_by=invited_by,
        token_hash=hash_token(token),
        last_sent_at=now,
        expires_at=now + INVITATION_LIFETIME,
    )


def make_endpoint(team: Team, url: str, events: list[str] | None = None) -> Endpoint:
    """A webhook endpoint as the team page makes it (every event unless told otherwise)."""
    return Endpoint.objects.create(
        team=team, url=url, events=list(EventType.values) if events is None else events
    )


def make_job(
    team: Team,
    *,
    state: JobState = JobState.QUEUED,
    provider: str = "kie",
    created_at: datetime | None = None,
    waited: float | None = None,
    took: float | None = None,
    cost_micros: int | None = None,
    failure_code: str = "",
    server: str = "",
) -> Job:
    """A job as the pipeline leaves it in `state`, without its credits (tests of money make
    their own ledger entries): created at `created_at`, sent `waited` seconds later (it then
    has a task id), ended `took` seconds after that."""
    created = created_at or timezone.now()
    submitted = created + timedelta(seconds=waited) if waited is not None else None
    finished = submitted + timedelta(seconds=took) if submitted and took is not None else None
    job = Job.objects.create(
        team=team,
        provider=provider,
        input_kind=InputKind.FILE if provider == "swc" else InputKind.LINK,
        state=state,
        credits=10,
        task_id=f"task-{Job.objects.count() + 1}" if submitted else "",
        # Kept when the provider took it, as the pipeline keeps it.
        cleaned_by=get_provider(provider).credit_line() if submitted else "",
        provider_server=server,
        provider_cost_micros=cost_micros,
        failure_code=failure_code,
        failure_message=f"Failed: {failure_code}" if failure_code else "",
    )
    # `created_at` is set on insert; the history a test needs is written over it.
    Job.objects.filter(pk=job.pk).update(
        created_at=created, submitted_at=submitted, finished_at=finished
    )
    job.refresh_from_db()
    if server and provider == "swc" and state in (JobState.SUBMITTED, JobState.PROCESSING):
        # The pool's own record of the video on that server, as it keeps it while it runs.
        machine, _ = SwcServer.objects.get_or_create(url=server)
        PoolTask.objects.create(reference=str(job.public_id), server=machine, task_id=job.task_id)
    return job
