from django.urls import path

from apps.ops import views

app_name = "ops"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("figures.csv", views.figures_csv, name="figures_csv"),
]
