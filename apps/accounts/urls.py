from django.urls import path

from apps.accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.teams, name="teams"),
    path("new/", views.create_team, name="create_team"),
    path("switch/", views.switch_team, name="switch_team"),
    path("invite/<str:token>/", views.invitation, name="invitation"),
    path("<uuid:team_id>/members/", views.members, name="members"),
    path("<uuid:team_id>/members/invite/", views.invite, name="invite"),
    path("<uuid:team_id>/members/<int:membership_id>/", views.member, name="member"),
    path(
        "<uuid:team_id>/members/<int:membership_id>/role/",
        views.change_role,
        name="change_role",
    ),
    path(
        "<uuid:team_id>/members/<int:membership_id>/limit/",
        views.set_limit,
        name="set_limit",
    ),
    path(
        "<uuid:team_id>/members/<int:membership_id>/remove/",
        views.remove_member,
        name="remove_member",
    ),
    path(
        "<uuid:team_id>/members/<int:membership_id>/offer-ownership/",
        views.offer_ownership,
        name="offer_ownership",
    ),
    path(
        "<uuid:team_id>/invitations/<int:invitation_id>/resend/",
        views.resend_invitation,
        name="resend_invitation",
    ),
    path(
        "<uuid:team_id>/invitations/<int:invitation_id>/revoke/",
        views.revoke_invitation,
        name="revoke_invitation",
    ),
    path("<uuid:team_id>/ownership/", views.ownership_offer, name="ownership_offer"),
    path("<uuid:team_id>/ownership/accept/", views.accept_ownership, name="accept_ownership"),
    path(
        "<uuid:team_id>/ownership/close/",
        views.close_ownership_offer,
        name="close_ownership_offer",
    ),
    path("<uuid:team_id>/activity/", views.activity, name="activity"),
    path("<uuid:team_id>/settings/", views.team_settings, name="team_settings"),
    path("<uuid:team_id>/rename/", views.rename_team, name="rename_team"),
    path("<uuid:team_id>/two-factor/", views.require_two_factor, name="require_two_factor"),
    path("<uuid:team_id>/delete/", views.delete_team, name="delete_team"),
    path("<uuid:team_id>/leave/", views.leave_team, name="leave_team"),
]
