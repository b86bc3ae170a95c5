from django.urls import path

from apps.api import views

app_name = "api_keys"

urlpatterns = [
    path("t/<uuid:team_id>/api-keys/", views.api_keys, name="list"),
    path("t/<uuid:team_id>/api-keys/new/", views.create_key, name="create"),
    path("t/<uuid:team_id>/api-keys/<int:key_id>/revoke/", views.revoke_key, name="revoke"),
]
