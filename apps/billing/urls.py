from django.urls import path

from apps.billing import views

app_name = "billing"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("checkout/", views.checkout, name="checkout"),
    path("success/", views.success, name="success"),
    path("ledger.csv", views.ledger_csv, name="ledger_csv"),
]
