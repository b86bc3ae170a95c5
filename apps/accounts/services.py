"""Team flows that span several rows: creating, renaming and deleting teams, membership
changes, ownership transfer, and the audit log that records them all.

A team always keeps at least one owner. Every change that could break that locks all of the
team's memberships first and re-checks the actor's permission under the lock, so two
concurrent changes (two owners demoting each other, say) cannot both pass.
"""

from collections.abc import Sequence

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from apps import plural
from apps.accounts import emails, usage
from apps.accounts.models import (
    ASSIGNABLE_ROLES,
    Membership,
    OwnershipOffer,
    Role,
    Team,
    TeamEvent,
    TeamEventKind,
    User,
)


class ActionRefused(Exception):
    """A team rule forbids this change; the message says why, in plain words."""


def record_team_event(
    *,
    team: Team,
    kind: TeamEventKind,
    actor: User | None = None,
    subject_email: str = "",
    detail: str = "",
) -> TeamEvent:
    """Adds a line to the team's audit log. `actor` None means staff or the system acted."""
    return TeamEvent.objects.create(
        team=team,
        kind=kind,
        actor=actor,
        actor_email=actor.email if actor else "",
        subject_email=subject_email,
        # A long free-text reason (a staff grant, say) must not fail the action it records.
        detail=detail[:300],
    )


def create_team(*, name: str, owner: User, personal: bool = False) -> Team:
    with transaction.atomic():
        team = Team.objects.create(name=name, is_personal=personal)
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
        record_team_event(team=team, kind=TeamEventKind.CREATED, actor=owner, detail=name)
    return team


def ensure_personal_team(*, user: User) -> Team:
    """The person's personal team, which they own, made if they have none yet."""
    existing = Team.objects.filter(is_personal=True, memberships__user=user).first()
    return existing or create_team(name=personal_team_name(user), owner=user, personal=True)


def personal_team_name(user: User) -> str:
    return f"{user.email.split('@', 1)[0][:60]}'s team"


def rename_team(*, team: Team, name: str, actor: User) -> None:
    if name == team.name:
        return
    with transaction.atomic():
        old_name = team.name
        team.name = name
        team.save(update_fields=["name"])
        record_team_event(
            team=team, kind=TeamEventKind.RENAMED, actor=actor, detail=f"{old_name} → {name}"
        )


def _lock_memberships(team: Team) -> dict[int, Membership]:
    """Locks every membership of `team` and returns them as they are now, by id.

    Locking in id order means two transactions locking the same team cannot deadlock.
    """
    rows = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user", "team")
        .filter(team=team)
        .order_by("pk")
    )
    return {membership.pk: membership for membership in rows}


def _as_it_is_now(locked: dict[int, Membership], membership: Membership) -> Membership:
    """The acting person's membership as re-read under the lock; 403 if they lost it meanwhile."""
    fresh = locked.get(membership.pk)
    if fresh is None:
        raise PermissionDenied
    return fresh


def _target_as_it_is_now(locked: dict[int, Membership], membership: Membership) -> Membership:
    fresh = locked.get(membership.pk)
    if fresh is None:
        raise ActionRefused(f"{membership.user.email} is no longer a member of this team.")
    return fresh


def _lock_pair(
    actor: Membership, target: Membership
) -> tuple[dict[int, Membership], Membership, Membership]:
    """Locks the team's memberships; returns them with the actor and target as they are now."""
    locked = _lock_memberships(actor.team)
    return locked, _as_it_is_now(locked, actor), _target_as_it_is_now(locked, target)


def _ensure_an_owner_remains(
    locked: dict[int, Membership], *, losing: Membership, actor: Membership
) -> None:
    """Refuses a change that would take away the team's last owner (`losing` stops owning)."""
    if not losing.is_owner or any(m.is_owner and m.pk != losing.pk for m in locked.values()):
        return
    team = losing.team
    if len(locked) == 1:
        raise ActionRefused(
            f"You are the only member of {team.name}, and a team can't be left without an owner."
            + ("" if team.is_personal else " Delete the team instead.")
        )
    who = "You are" if losing.pk == actor.pk else f"{losing.user.email} is"
    raise ActionRefused(
        f"{who} the only owner of {team.name}. Transfer ownership to another member first:"
        " a team always has at least one owner."
    )


def change_role(*, actor: Membership, target: Membership, role: Role) -> None:
    if role not in ASSIGNABLE_ROLES:
        raise ActionRefused("Ownership passes only by an offer that the new owner accepts.")
    with transaction.atomic():
        locked, actor, target = _lock_pair(actor, target)
        if not actor.can_manage_member(target):
            raise PermissionDenied
        if target.role == role:
            return
        _ensure_an_owner_remains(locked, losing=target, actor=actor)
        old_role = target.get_role_display()
        target.role = role
        target.save(update_fields=["role"])
        # An offer stands for its owner's wish; an ex-owner can no longer hand the team over.
        OwnershipOffer.objects.filter(offered_by=target).delete()
        record_team_event(
            team=target.team,
            kind=TeamEventKind.ROLE_CHANGED,
            actor=actor.user,
            subject_email=target.user.email,
            detail=f"{old_role} → {target.get_role_display()}",
        )


def set_monthly_limit(*, actor: Membership, target: Membership, limit: int | None) -> None:
    """Sets (or, with None, lifts) the most credits `target` may spend per calendar month."""
    with transaction.atomic():
        _, actor, target = _lock_pair(actor, target)
        # A limit binds the person it is set on: only an owner may change their own.
        if not actor.can_manage_member(target) or (target == actor and not actor.is_owner):
            raise PermissionDenied
        if target.monthly_credit_limit == limit:
            return
        target.monthly_credit_limit = limit
        target.save(update_fields=["monthly_credit_limit"])
        record_team_event(
            team=target.team,
            kind=TeamEventKind.LIMIT_CHANGED,
            actor=actor.user,
            subject_email=target.user.email,
            detail="No limit"
            if limit is None
            else f"{plural.videos(limit // settings.CREDITS_PER_VIDEO)} a month"
            f" ({plural.credits(limit)})",
        )


def remove_member(*, actor: Membership, target: Membership) -> None:
    """Takes `target` out of the team. Their jobs and the team's history stay."""
    with transaction.atomic():
        locked, actor, target = _lock_pair(actor, target)
        if not actor.can_remove(target):
            raise PermissionDenied
        _ensure_an_owner_remains(locked, losing=target, actor=actor)
        target.delete()
        record_team_event(
            team=target.team,
            kind=TeamEventKind.REMOVED,
            actor=actor.user,
            subject_email=target.user.email,
            detail=f"Was {target.get_role_display().lower()}",
        )
        removed, by = target.user, actor.user
        transaction.on_commit(
            lambda: emails.send_removed_from_team(team=target.team, person=removed, by=by)
        )


def leave_team(*, membership: Membership) -> None:
    with transaction.atomic():
        locked = _lock_memberships(membership.team)
        membership = _as_it_is_now(locked, membership)
        _ensure_an_owner_remains(locked, losing=membership, actor=membership)
        membership.delete()
        record_team_event(
            team=membership.team,
            kind=TeamEventKind.LEFT,
            actor=membership.user,
            subject_email=membership.user.email,
            detail=f"Was {membership.get_role_display().lower()}",
        )


# One rule for deleting a team and for deleting an account (which deletes teams): refused
# while any of their videos is still being cleaned, whose result and settled credits would
# arrive for a team nobody can open any more. Waiting costs minutes; nothing is lost.
VIDEOS_IN_FLIGHT = (
    "Some videos are still being cleaned. Try again once they are done (or have failed); it "
    "takes a few minutes at most. Nothing was deleted."
)


def refuse_while_videos_in_flight(teams: Sequence[Team]) -> None:
    """Raises `ActionRefused` if any of `teams` (about to be deleted) has a video in flight."""
    if usage.videos_in_flight(team_ids=[team.pk for team in teams]):
        raise ActionRefused(VIDEOS_IN_FLIGHT)


def archive_team(*, team: Team, actor: Membership) -> None:
    """Deletes a team for its members: it disappears from their lists and nobody can act in
    it any more. Rows that reference it (jobs, ledger, this log) stay, for staff. Refused
    while its videos are being cleaned (`refuse_while_videos_in_flight`).
    """
    if team.is_personal:
        raise ActionRefused("A personal team can't be deleted.")
    with transaction.atomic():
        locked = _lock_memberships(team)
        actor = _as_it_is_now(locked, actor)
        if not actor.is_owner:
            raise PermissionDenied
        refuse_while_videos_in_flight([team])
        now = timezone.now()
        team.archived_at = now
        team.save(update_fields=["archived_at"])
        team.invitations.open().update(revoked_at=now)
        OwnershipOffer.objects.filter(team=team).delete()
        record_team_event(team=team, kind=TeamEventKind.ARCHIVED, actor=actor.user)


def teams_left_without_owner(user: User) -> list[Team]:
    """Teams `user` alone owns that have other members: deleting `user` would orphan them."""
    owned = Membership.objects.active().filter(user=user, role=Role.OWNER).values("team_id")
    return list(
        Team.objects.filter(pk__in=owned)
        .annotate(
            owners=Count("memberships", filter=Q(memberships__role=Role.OWNER)),
            members=Count("memberships"),
        )
        .filter(owners=1, members__gt=1)
        .order_by("name")
    )


def delete_user(*, user: User) -> None:
    """Deletes a person (staff, in the admin). Never leaves a team without an owner: refused
    while they alone own a team with other members (make one of them an owner first). Teams
    they were the only member of are deleted with them (archived: history stays for staff).
    """
    with transaction.atomic():
        # By id: counting members through the filter on `user` would count only theirs.
        teams = Team.objects.active().filter(
            pk__in=Membership.objects.filter(user=user).values("team_id")
        )
        for team in teams:
            _lock_memberships(team)  # no role change or new member slips in meanwhile
        if orphaned := teams_left_without_owner(user):
            names = ", ".join(team.name for team in orphaned)
            raise ActionRefused(
                f"{user.email} is the only owner of {names}: make another member an owner first."
            )
        alone_in = list(teams.annotate(members=Count("memberships")).filter(members=1))
        refuse_while_videos_in_flight(alone_in)
        now = timezone.now()
        for team in alone_in:
            team.archived_at = now
            team.save(update_fields=["archived_at"])
            record_team_event(
                team=team, kind=TeamEventKind.ARCHIVED, detail="Its only member was deleted."
            )
        user.delete()


def set_two_factor_requirement(*, actor: Membership, required: bool) -> None:
    """An owner requires (or stops requiring) two-factor authentication of every member."""
    team = actor.team
    if required and not is_mfa_enabled(actor.user):
        # Otherwise the owner would be the first person the team locks out.
        raise ActionRefused("Set up two-factor authentication for yourself first.")
    with transaction.atomic():
        locked = _lock_memberships(team)
        if not _as_it_is_now(locked, actor).is_owner:
            raise PermissionDenied
        team = Team.objects.select_for_update().get(pk=team.pk)
        if team.require_mfa == required:
            return
        team.require_mfa = required
        team.save(update_fields=["require_mfa"])
        actor.team.require_mfa = required
        record_team_event(
            team=team,
            kind=TeamEventKind.MFA_REQUIRED if required else TeamEventKind.MFA_OPTIONAL,
            actor=actor.user,
        )


def offer_ownership(*, actor: Membership, target: Membership, site_url: str) -> OwnershipOffer:
    """First step of a transfer: `target` becomes an owner only when they accept."""
    with transaction.atomic():
        _, actor, target = _lock_pair(actor, target)
        if not actor.is_owner:
            raise PermissionDenied
        if target.is_owner:
            raise ActionRefused(f"{target.user.email} is already an owner.")
        pending = OwnershipOffer.objects.filter(team=actor.team).select_related("offered_to__user")
        if existing := pending.first():
            raise ActionRefused(
                f"Ownership is already offered to {existing.offered_to.user.email}."
                " Cancel that offer first."
            )
        offer = OwnershipOffer.objects.create(team=actor.team, offered_by=actor, offered_to=target)
        record_team_event(
            team=actor.team,
            kind=TeamEventKind.OWNERSHIP_OFFERED,
            actor=actor.user,
            subject_email=target.user.email,
        )
    emails.send_ownership_offered(offer=offer, site_url=site_url)
    return offer


def close_ownership_offer(*, offer: OwnershipOffer, by: Membership) -> None:
    """An owner cancels the team's open offer, or its recipient declines it."""
    declined = offer.offered_to_id == by.pk
    with transaction.atomic():
        # Locked so that an acceptance running at the same time wins or loses cleanly.
        if not OwnershipOffer.objects.select_for_update().filter(pk=offer.pk).exists():
            raise ActionRefused("This ownership offer is no longer open.")
        offer.delete()
        record_team_event(
            team=offer.team,
            kind=TeamEventKind.OWNERSHIP_OFFER_CLOSED,
            actor=by.user,
            subject_email=offer.offered_to.user.email,
            detail="Declined" if declined else "Canceled",
        )


def accept_ownership(*, membership: Membership) -> None:
    """Second step of a transfer: the recipient becomes an owner, the offerer an admin."""
    with transaction.atomic():
        locked = _lock_memberships(membership.team)
        offer = OwnershipOffer.objects.select_for_update().filter(team=membership.team).first()
        new_owner = locked.get(membership.pk)
        if offer is None or new_owner is None or offer.offered_to_id != new_owner.pk:
            raise ActionRefused("This ownership offer is no longer open.")
        previous_owner = locked.get(offer.offered_by_id)
        # Offers go away when their owner leaves or is demoted in the app; staff editing roles
        # in the admin can still leave one behind.
        if previous_owner is None or not previous_owner.is_owner:
            raise ActionRefused("This ownership offer is no longer valid: ask an owner again.")
        new_owner.role = Role.OWNER
        new_owner.save(update_fields=["role"])
        previous_owner.role = Role.ADMIN
        previous_owner.save(update_fields=["role"])
        offer.delete()
        record_team_event(
            team=new_owner.team,
            kind=TeamEventKind.OWNERSHIP_TRANSFERRED,
            actor=new_owner.user,
            subject_email=previous_owner.user.email,
            detail=(
                f"From {previous_owner.user.email} to {new_owner.user.email};"
                f" {previous_owner.user.email} is now an admin"
            ),
        )
