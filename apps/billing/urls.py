from django.urls import include, path

from apps.billing import views

app_name = "billing"

team_urlpatterns = [
    path("", views.overview, name="overview"),
    path("checkout/", views.checkout, name="checkout"),
    path("success/", views.success, name="success"),
    path("ledger.csv", views.ledger_csv, name="ledger_csv"),
]

urlpatterns = [path("t/<uuid:team_id>/billing/", include(team_urlpatterns))]
