from django.urls import include, path

from apps.accounts import views

app_name = "accounts"

team_urlpatterns = [
    path("members/", views.members, name="members"),
    path("members/invite/", views.invite, name="invite"),
    path("members/<int:membership_id>/", views.member, name="member"),
    path(
        "members/<int:membership_id>/role/",
        views.change_role,
        name="change_role",
    ),
    path(
        "members/<int:membership_id>/limit/",
        views.set_limit,
        name="set_limit",
    ),
    path(
        "members/<int:membership_id>/remove/",
        views.remove_member,
        name="remove_member",
    ),
    path(
        "members/<int:membership_id>/offer-ownership/",
        views.offer_ownership,
        name="offer_ownership",
    ),
    path(
        "invitations/<int:invitation_id>/resend/",
        views.resend_invitation,
        name="resend_invitation",
    ),
    path(
        "invitations/<int:invitation_id>/revoke/",
        views.revoke_invitation,
        name="revoke_invitation",
    ),
    path("ownership/", views.ownership_offer, name="ownership_offer"),
    path("ownership/accept/", views.accept_ownership, name="accept_ownership"),
    path(
        "ownership/close/",
        views.close_ownership_offer,
        name="close_ownership_offer",
    ),
    path("activity/", views.activity, name="activity"),
    path("settings/", views.team_settings, name="team_settings"),
    path("rename/", views.rename_team, name="rename_team"),
    path("two-factor/", views.require_two_factor, name="require_two_factor"),
    path("low-balance/", views.set_low_balance, name="set_low_balance"),
    path("delete/", views.delete_team, name="delete_team"),
    path("leave/", views.leave_team, name="leave_team"),
]

urlpatterns = [
    path("teams/", views.teams, name="teams"),
    path("teams/new/", views.create_team, name="create_team"),
    path("teams/switch/", views.switch_team, name="switch_team"),
    path("teams/invite/<str:token>/", views.invitation, name="invitation"),
    path("t/<uuid:team_id>/", include(team_urlpatterns)),
]
