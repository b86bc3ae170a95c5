from django.urls import include, path

from apps.webhooks import views

app_name = "webhooks"

team_urlpatterns = [
    path("", views.endpoints, name="endpoints"),
    path("<uuid:endpoint_id>/", views.endpoint, name="endpoint"),
    path("<uuid:endpoint_id>/rotate/", views.rotate_secret, name="rotate_secret"),
    path("<uuid:endpoint_id>/remove/", views.remove_endpoint, name="remove_endpoint"),
    path("<uuid:endpoint_id>/enable/", views.enable_endpoint, name="enable_endpoint"),
    path("<uuid:endpoint_id>/test/", views.send_test_event, name="send_test_event"),
    path(
        "<uuid:endpoint_id>/deliveries/<int:delivery_id>/resend/",
        views.resend_delivery,
        name="resend_delivery",
    ),
]

urlpatterns = [path("t/<uuid:team_id>/webhooks/", include(team_urlpatterns))]
