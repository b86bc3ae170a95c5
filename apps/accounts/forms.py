from typing import Any

from allauth.account import forms as allauth_forms
from allauth.core import context
from django import forms
from django.conf import settings

from apps.accounts.invitations import invitation_opened_in
from apps.accounts.models import ASSIGNABLE_ROLES, Team, User

ROLE_CHOICES = [(role.value, role.label) for role in ASSIGNABLE_ROLES]


class SwitchTeamForm(forms.Form):
    team = forms.UUIDField()
    next = forms.CharField(required=False, max_length=2000)


class TeamNameForm(forms.Form):
    """Names a new team, or renames one."""

    name = forms.CharField(max_length=80, label="Team name")


class DeleteTeamForm(forms.Form):
    confirm_name = forms.CharField(max_length=80, label="Type the team's name to confirm")

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.team = team

    def clean_confirm_name(self) -> str:
        typed: str = self.cleaned_data["confirm_name"]
        if typed != self.team.name:
            raise forms.ValidationError(f"Type {self.team.name} exactly to delete the team.")
        return typed


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=ROLE_CHOICES[-1][0])


class ChangeRoleForm(forms.Form):
    # Never "owner": ownership passes only by an offer the new owner accepts.
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class VideosField(forms.IntegerField):
    """A number of videos on the page, a number of credits in the database: people think in
    videos, and a limit that is not a whole number of videos would strand a few credits."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, max_value=1_000_000, required=False, **kwargs)

    def clean(self, value: Any) -> int | None:
        videos = super().clean(value)
        return None if videos is None else videos * settings.CREDITS_PER_VIDEO

    @staticmethod
    def initial_from(credits: int | None) -> int | None:
        return None if credits is None else credits // settings.CREDITS_PER_VIDEO


class MonthlyLimitForm(forms.Form):
    monthly_credit_limit = VideosField(
        label="Monthly limit, in videos",
        help_text="Videos this person may make per calendar month (each is "
        f"{settings.CREDITS_PER_VIDEO} credits, $0.05). Leave empty for no limit.",
    )


class LowBalanceForm(forms.Form):
    low_balance_threshold = VideosField(
        label="Email owners and admins when fewer videos than this are left",
        help_text="Once each time the credits fall below it. Leave empty for no email.",
    )


class NotificationsForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["email_when_batch_finishes"]


class TwoFactorRequirementForm(forms.Form):
    require_mfa = forms.BooleanField(
        required=False, label="Require two-factor authentication for every member"
    )


class LoginForm(allauth_forms.LoginForm):
    """allauth's sign-in form in the product's words."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "remember" in self.fields:
            self.fields["remember"].label = "Remember me"


class SignupForm(allauth_forms.SignupForm):
    """allauth's sign-up form, which knows the invitation this browser came from (if any), so
    the page can say which team the new account is joining."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invitation = invitation_opened_in(context.request)


class ChangePasswordForm(allauth_forms.ChangePasswordForm):
    """allauth's password form with labels in sentence case, like every other form."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = {
            "oldpassword": "Current password",
            "password1": "New password",
            "password2": "New password (again)",
        }
        for name, label in labels.items():
            if name in self.fields:
                self.fields[name].label = label
                self.fields[name].widget.attrs.pop("placeholder", None)
