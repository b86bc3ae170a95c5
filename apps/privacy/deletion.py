"""Deleting an account, with the team rules.

- A team never loses its last owner: someone who alone owns a team that has other members must
  hand it over (or delete it) first; a team they alone are in (not their personal one) must be
  deleted first, so nobody loses credits by surprise.
- Their personal team, if nobody else is in it, goes with them (archived, like a deleted team).
- Money and job history stay whole: ledger entries, jobs and the audit log remain; where they
  named the person, the name is replaced.
- Their stored files (uploaded originals, results, posters) are deleted where no team still
  needs them: the files of jobs in the teams archived with the account, unless another team's
  job points at the same stored file.
"""

import logging
from dataclasses import dataclass

from allauth.account.models import EmailAddress
from allauth.usersessions.models import UserSession
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import (
    Membership,
    OwnershipOffer,
    Role,
    Team,
    TeamEvent,
    TeamEventKind,
    User,
)
from apps.accounts.services import (
    ActionRefused,
    record_team_event,
    refuse_while_videos_in_flight,
)
from apps.jobs.models import Job

logger = logging.getLogger(__name__)

DELETED_NAME = "a deleted account"
JOB_FILE_FIELDS = ("original_file", "original_poster", "result_file", "result_poster")


@dataclass(frozen=True)
class BlockingTeam:
    """A team the person must deal with before their account can go, and what to do."""

    team: Team
    has_other_members: bool

    @property
    def advice(self) -> str:
        if self.has_other_members:
            return "Offer ownership to another member, or delete the team."
        return "You are its only member: delete the team (its history is kept)."


def _plan(user: User) -> tuple[list[BlockingTeam], list[Team], list[Membership]]:
    """What deleting `user` would do: blocking teams, teams to archive, memberships to end."""
    blocking: list[BlockingTeam] = []
    archive: list[Team] = []
    leave: list[Membership] = []
    memberships = Membership.objects.active().filter(user=user).select_related("team")
    for membership in memberships.order_by("team__name", "id"):
        team = membership.team
        others = team.memberships.exclude(user=user)
        if not membership.is_owner or others.filter(role=Role.OWNER).exists():
            leave.append(membership)
        elif not others.exists() and team.is_personal:
            archive.append(team)
        else:
            blocking.append(BlockingTeam(team=team, has_other_members=others.exists()))
    return blocking, archive, leave


def teams_blocking_deletion(user: User) -> list[BlockingTeam]:
    return _plan(user)[0]


def delete_account(*, user: User) -> int:
    """Deletes `user`, or raises `ActionRefused` naming the teams in the way.

    Returns how many stored files were deleted.
    """
    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)
        # Every team the person is in is locked, so no ownership change slips in between the
        # check and the deletion.
        team_ids = list(Membership.objects.filter(user=user).values_list("team_id", flat=True))
        list(Membership.objects.select_for_update().filter(team_id__in=team_ids).order_by("pk"))
        blocking, archive, leave = _plan(user)
        if blocking:
            names = ", ".join(b.team.name for b in blocking)
            raise ActionRefused(f"Hand over or delete these teams first: {names}.")
        refuse_while_videos_in_flight(archive)
        now = timezone.now()
        addresses = EmailAddress.objects.filter(user=user).values_list("email", flat=True)
        emails = {user.email.lower(), *(address.lower() for address in addresses)}
        for team in archive:
            team.archived_at = now
            team.save(update_fields=["archived_at"])
            team.invitations.open().update(revoked_at=now)
            OwnershipOffer.objects.filter(team=team).delete()
            record_team_event(team=team, kind=TeamEventKind.ARCHIVED, detail="Account deleted")
        for membership in leave:
            membership.delete()
            record_team_event(
                team=membership.team,
                kind=TeamEventKind.LEFT,
                subject_email=DELETED_NAME,
                detail=f"Was {membership.get_role_display().lower()}; account deleted",
            )
        files = _files_no_team_needs(archive)
        Job.objects.filter(team__in=archive).update(**dict.fromkeys(JOB_FILE_FIELDS, ""))
        _replace_name(emails)
        for session in UserSession.objects.filter(user=user):
            session.end()
        user.delete()
        transaction.on_commit(lambda: _delete_files(files))
    return len(files)


def _files_no_team_needs(archived: list[Team]) -> set[str]:
    """Stored files of the archived teams' jobs that no job of another team refers to."""
    theirs = Job.objects.filter(team__in=archived)
    others = Job.objects.exclude(team__in=archived)
    files: set[str] = set()
    for field in JOB_FILE_FIELDS:
        names = set(theirs.exclude(**{field: ""}).values_list(field, flat=True))
        files |= names
    for field in JOB_FILE_FIELDS:
        files -= set(others.filter(**{f"{field}__in": files}).values_list(field, flat=True))
    return files


def _replace_name(emails: set[str]) -> None:
    """The audit log keeps its lines; where they named the person, they now say who no more."""
    for field in ("actor_email", "subject_email"):
        lookup = Q()
        for email in emails:
            lookup |= Q(**{f"{field}__iexact": email})
        TeamEvent.objects.filter(lookup).update(**{field: DELETED_NAME})
    for email in emails:
        for event in TeamEvent.objects.filter(detail__icontains=email):
            event.detail = _replace_ci(event.detail, email, DELETED_NAME)
            event.save(update_fields=["detail"])


def _replace_ci(text: str, old: str, new: str) -> str:
    start = text.lower().find(old)
    while start != -1:
        text = text[:start] + new + text[start + len(old) :]
        start = text.lower().find(old, start + len(new))
    return text


def _delete_files(names: set[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:
            # The account is gone already; a file left behind is an operator's chore, logged.
            logger.exception("stored file not deleted", extra={"file": name})
