from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from apps.billing.views import stripe_webhook
from config import views

admin.site.site_header = "Unmark operations"
admin.site.site_title = "Unmark admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("allauth.urls")),
    path("account/", include("apps.privacy.urls")),
    path("teams/", include("apps.accounts.urls")),
    path("billing/", include("apps.billing.urls")),
    path("hooks/stripe/", stripe_webhook, name="stripe_webhook"),
    path("", include("apps.jobs.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]
