from django.apps import AppConfig


class ProvenanceConfig(AppConfig):
    """Content Credentials (C2PA). No models: the app exists to check the signing keys when a
    process starts, so a deploy with missing or broken keys stops there."""

    name = "apps.provenance"
    verbose_name = "Content Credentials"

    def ready(self) -> None:
        from apps.provenance.checks import check_signing_keys

        check_signing_keys()
