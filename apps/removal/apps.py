from django.apps import AppConfig


class RemovalConfig(AppConfig):
    name = "apps.removal"
    verbose_name = "Removal providers"

    def ready(self) -> None:
        from apps.removal.registry import check_policy

        check_policy()
