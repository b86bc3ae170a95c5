from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from apps.accounts.views import notifications
from apps.api import views as api_views
from apps.api.api import api
from apps.billing.views import stripe_webhook
from config import views

admin.site.site_header = "Unmark operations"
admin.site.site_title = "Unmark admin"

# Every page of a team's own things names the team: /t/<team public id>/… (see each app's urls).
urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("terms/", views.legal, {"page": "terms"}, name="terms"),
    path("privacy/", views.legal, {"page": "privacy"}, name="privacy"),
    path("contact/", views.legal, {"page": "contact"}, name="contact"),
    path("settings/emails/", notifications, name="notifications"),
    # Bookmarks and sign-in land here and are sent on to the person's team.
    path("dashboard/", views.to_team_page, {"page": "jobs:dashboard"}, name="dashboard"),
    path("billing/", views.to_team_page, {"page": "billing:overview"}, name="billing"),
    # Stripe still sends people who paid before the team moved into the URL back here; the
    # webhook credits their payment, so the team's credits page is the right answer.
    path("billing/success/", views.to_team_page, {"page": "billing:overview"}),
    path("accounts/", include("allauth.urls")),
    path("account/", include("apps.privacy.urls")),
    path("", include("apps.accounts.urls")),
    path("", include("apps.billing.urls")),
    path("hooks/stripe/", stripe_webhook, name="stripe_webhook"),
    path("", include("apps.jobs.urls")),
    path("", include("apps.webhooks.urls")),
    path("ops/", include("apps.ops.urls")),
    path("", include("apps.api.urls")),
    path("api/v1/", api.urls),
    path("api/v1/<path:rest>", api_views.not_found),
    path("api/docs", api_views.docs, name="api_docs"),
    path(settings.ADMIN_URL, admin.site.urls),
]
