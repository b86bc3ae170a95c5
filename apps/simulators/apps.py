from django.apps import AppConfig


class SimulatorsConfig(AppConfig):
    name = "apps.simulators"
    verbose_name = "Provider simulators"
