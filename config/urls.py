from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from apps.accounts.views import notifications
from apps.billing.views import stripe_webhook
from config import views

admin.site.site_header = "Unmark operations"
admin.site.site_title = "Unmark admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("terms/", views.legal, {"page": "terms"}, name="terms"),
    path("privacy/", views.legal, {"page": "privacy"}, name="privacy"),
    path("contact/", views.legal, {"page": "contact"}, name="contact"),
    path("accounts/", include("allauth.urls")),
    path("teams/", include("apps.accounts.urls")),
    path("settings/emails/", notifications, name="notifications"),
    path("billing/", include("apps.billing.urls")),
    path("hooks/stripe/", stripe_webhook, name="stripe_webhook"),
    path("", include("apps.jobs.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]
