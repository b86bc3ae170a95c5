from django.urls import path

from apps.privacy import views

app_name = "privacy"

urlpatterns = [
    path("data/", views.my_data, name="my_data"),
    path("data/download/", views.download_my_data, name="download_my_data"),
    path("delete/", views.delete_account, name="delete_account"),
]
