import hashlib
import uuid
from datetime import timedelta
from typing import Any, ClassVar

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models import Case, Exists, OuterRef, Q, Value, When
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **fields: Any) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> "User":
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> "User":
        fields["is_staff"] = True
        fields["is_superuser"] = True
        return self._create(email, password, **fields)


class User(AbstractUser):
    """A person. Signs in with an email address; there are no usernames."""

    username = None  # type: ignore[assignment]
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    # When this person last stated they own (or may edit) the videos they submit: stated once,
    # recorded with its time, instead of re-ticked on every paste.
    ownership_confirmed_at = models.DateTimeField(null=True, blank=True)
    email_when_batch_finishes = models.BooleanField(
        "email me when my videos are done",
        default=True,
        help_text="One email per paste or upload, once all its videos have finished.",
    )

    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    def confirm_ownership(self) -> None:
        """Records, once, that this person stated they own the videos they submit."""
        if self.ownership_confirmed_at is None:
            self.ownership_confirmed_at = timezone.now()
            User.objects.filter(pk=self.pk, ownership_confirmed_at__isnull=True).update(
                ownership_confirmed_at=self.ownership_confirmed_at
            )


class TeamQuerySet(models.QuerySet["Team"]):
    def active(self) -> "TeamQuerySet":
        """Teams people can work in. Archived teams keep their history, for staff only."""
        return self.filter(archived_at__isnull=True)


class Team(models.Model):
    """A group of people sharing one credit balance and one job history."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=80)
    is_personal = models.BooleanField(
        default=False, help_text="Created for a person at sign-up; they are its first owner."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    require_mfa = models.BooleanField(
        "require two-factor authentication",
        default=False,
        help_text="Members must set up two-factor authentication before they can use the team.",
    )
    # Deleting a team archives it: its jobs and ledger rows reference it and money history is
    # never lost. An archived team is gone for its members and stays visible to staff.
    archived_at = models.DateTimeField(null=True, blank=True)
    # Owners and admins are emailed when available credits fall below this (empty: never);
    # `low_balance_alerted` says the email went and re-arms once credits are back above it.
    low_balance_threshold = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Email owners and admins when available credits fall below this.",
    )
    low_balance_alerted = models.BooleanField(default=False)

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("jobs:dashboard", kwargs={"team_id": self.public_id})

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    def members_without_two_factor(self) -> "MembershipQuerySet":
        """Members who have no authenticator app or security key yet."""
        has_one = Authenticator.objects.filter(user=OuterRef("user"))
        return self.memberships.select_related("user").filter(~Exists(has_one)).in_rank_order()


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


# Owners and admins invite, remove, change roles, set limits and buy credits.
MANAGER_ROLES = (Role.OWNER, Role.ADMIN)
# Roles an invitation or a role change may give; ownership only ever passes by an accepted offer.
ASSIGNABLE_ROLES = (Role.ADMIN, Role.MEMBER)


class MembershipQuerySet(models.QuerySet["Membership"]):
    def active(self) -> "MembershipQuerySet":
        """Memberships of teams that are not archived."""
        return self.filter(team__archived_at__isnull=True)

    def in_rank_order(self) -> "MembershipQuerySet":
        """Owners first, then admins, then members; alphabetical by email within a role."""
        rank = Case(
            When(role=Role.OWNER, then=Value(0)),
            When(role=Role.ADMIN, then=Value(1)),
            default=Value(2),
        )
        return self.alias(rank=rank).order_by("rank", "user__email")


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    monthly_credit_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Most credits this person may spend in this team per calendar month (UTC);"
        " empty means no limit.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team")
        ]
        ordering = ["team__name", "id"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER

    @property
    def can_manage(self) -> bool:
        return self.role in MANAGER_ROLES

    @property
    def can_buy_credits(self) -> bool:
        """Owners and admins buy credits, unless the team gave them a monthly limit: then they
        spend like members and are not offered a way round it."""
        return self.can_manage and self.monthly_credit_limit is None

    def can_manage_member(self, other: "Membership") -> bool:
        """Whether this person may change `other`'s role or limit, or remove them.

        Owners manage everyone in their team; admins manage everyone but owners; members no one.
        """
        if not self.can_manage or other.team_id != self.team_id:
            return False
        return self.is_owner or not other.is_owner

    def can_remove(self, other: "Membership") -> bool:
        """Removing yourself is leaving, which has its own rules (`leave_team`)."""
        return other.pk != self.pk and self.can_manage_member(other)


INVITATION_LIFETIME = timedelta(days=7)


def hash_token(token: str) -> str:
    """Invitation tokens are stored hashed: a database leak must not hand out team seats."""
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def open(self) -> "InvitationQuerySet":
        """Neither accepted nor revoked; expired ones included (they can be resent)."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True)


class Refusal(models.TextChoices):
    """Why an invitation link cannot be accepted (by this person, now)."""

    UNKNOWN = "unknown", "This invitation link is not valid."
    USED = "used", "This invitation has already been used."
    REVOKED = "revoked", "This invitation was withdrawn."
    EXPIRED = "expired", "This invitation has expired."
    ALREADY_MEMBER = "already_member", "You are already a member of this team."
    WRONG_EMAIL = "wrong_email", "This invitation is for another email address."
    UNVERIFIED = "unverified", "Confirm your email address before joining."


class Invitation(models.Model):
    """A single-use link, sent by email, that lets the owner of that address join a team."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(help_text="Stored lowercase.")
    role = models.CharField(
        max_length=10, choices=[(role.value, role.label) for role in ASSIGNABLE_ROLES]
    )
    # The raw token exists only in the emailed link; a resend replaces it, killing the old link.
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_sent_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "email"],
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_open_per_team_email",
            ),
            models.CheckConstraint(
                condition=Q(role__in=[role.value for role in ASSIGNABLE_ROLES]),
                name="invitation_role_never_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.team}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        return "expired" if self.is_expired else "pending"

    def refusal_for(self, user: User | None) -> Refusal | None:
        """Why `user` cannot accept this invitation now, or None if they can.

        `user` is None for a signed-out visitor: only the invitation's own state is checked.
        """
        if self.accepted_at:
            return Refusal.USED
        if self.revoked_at or self.team.is_archived:
            return Refusal.REVOKED
        if self.is_expired:
            return Refusal.EXPIRED
        if user is None:
            return None
        confirmed = EmailAddress.objects.filter(user=user, email__iexact=self.email).values_list(
            "verified", flat=True
        )
        if not any(confirmed):
            # Accounts made outside sign-up (createsuperuser) have no allauth record of their
            # address yet: it is still theirs, it only needs confirming.
            theirs = bool(confirmed) or user.email.lower() == self.email
            return Refusal.UNVERIFIED if theirs else Refusal.WRONG_EMAIL
        if self.team.memberships.filter(user=user).exists():
            return Refusal.ALREADY_MEMBER
        return None


class OwnershipOffer(models.Model):
    """An owner's offer to hand the team to another member; it takes effect when they accept.

    One open offer per team. It disappears with either membership (the person left or was
    removed) and is checked again on acceptance (the offerer must still be an owner).
    """

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="ownership_offer")
    offered_by = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="+")
    offered_to = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Ownership of {self.team} offered to {self.offered_to.user}"


class TeamEventKind(models.TextChoices):
    CREATED = "created", "Team created"
    RENAMED = "renamed", "Team renamed"
    INVITED = "invited", "Invited"
    INVITATION_RESENT = "invitation_resent", "Invitation resent"
    INVITATION_REVOKED = "invitation_revoked", "Invitation revoked"
    JOINED = "joined", "Joined"
    ROLE_CHANGED = "role_changed", "Role changed"
    REMOVED = "removed", "Removed"
    LEFT = "left", "Left"
    OWNERSHIP_OFFERED = "ownership_offered", "Ownership offered"
    OWNERSHIP_OFFER_CLOSED = "ownership_offer_closed", "Ownership offer withdrawn"
    OWNERSHIP_TRANSFERRED = "ownership_transferred", "Ownership transferred"
    LIMIT_CHANGED = "limit_changed", "Monthly limit changed"
    CREDITS_GRANTED = "credits_granted", "Credits granted"
    ARCHIVED = "archived", "Team deleted"
    MFA_REQUIRED = "mfa_required", "Two-factor required"
    MFA_OPTIONAL = "mfa_optional", "Two-factor no longer required"
    WEBHOOK_ADDED = "webhook_added", "Webhook endpoint added"
    WEBHOOK_CHANGED = "webhook_changed", "Webhook endpoint changed"
    WEBHOOK_REMOVED = "webhook_removed", "Webhook endpoint removed"
    WEBHOOK_SECRET_ROTATED = "webhook_secret_rotated", "Webhook secret rotated"
    WEBHOOK_DISABLED = "webhook_disabled", "Webhook endpoint turned off"
    WEBHOOK_ENABLED = "webhook_enabled", "Webhook endpoint turned back on"
    API_KEY_CREATED = "api_key_created", "API key created"
    API_KEY_REVOKED = "api_key_revoked", "API key revoked"


class TeamEvent(models.Model):
    """One line of a team's audit log. Append-only.

    People are recorded as email text as well as by key, so the log still reads right after
    the person leaves, is removed or deletes their account.
    """

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=30, choices=TeamEventKind.choices)
    actor = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_email = models.CharField(
        max_length=254, blank=True, help_text="Empty when staff or the system acted."
    )
    subject_email = models.CharField(max_length=254, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"], name="teamevent_team_recent")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} in {self.team}"
