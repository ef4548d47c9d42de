from django.apps import AppConfig

from connectors import outbound
from portal.security.outbound import outbound_policy


class PortalConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "portal"
    verbose_name = "Data release portal"

    def ready(self) -> None:
        # connectors/ knows no Django: hand it the allow-list of the outbound policy here.
        outbound.configure(outbound_policy)
        # Imported here, not at the top: these modules use the models, which exist only once the app
        # registry is ready. auth_audit connects its signal receivers on import.
        from portal.operations import observability
        from portal.security import auth_audit  # noqa: F401

        observability.connect()
