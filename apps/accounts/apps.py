from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    verbose_name = "Accounts and teams"
    # This module also holds the admin's config (below): this one is the app's.
    default = True


class UnmarkAdminConfig(admin_apps.AdminConfig):
    """Django's admin, on the site that asks staff for two-factor authentication."""

    default = False
    default_site = "apps.accounts.admin_site.UnmarkAdminSite"
