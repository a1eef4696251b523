"""App configuration for the triage app."""

from django.apps import AppConfig


class TriageConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "triage"
    verbose_name = "Remissprioritering"

    def ready(self) -> None:
        # Connects the login signal that starts the idle-timeout clock.
        from triage import middleware  # noqa: F401
