from django.urls import path

from apps.accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.teams, name="teams"),
    path("switch/", views.switch_team, name="switch_team"),
]
