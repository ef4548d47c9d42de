from django.apps import AppConfig


class PortalConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "portal"
    verbose_name = "Data release portal"

    def ready(self) -> None:
        # Imported here: these modules use the models, which exist only once apps are loaded.
        from . import observability  # noqa: PLC0415

        observability.connect()
