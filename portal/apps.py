from django.apps import AppConfig

from connectors import outbound

from .outbound import outbound_policy


class PortalConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "portal"
    verbose_name = "Data release portal"

    def ready(self) -> None:
        # connectors/ knows no Django: hand it the allow-list of the outbound policy here.
        outbound.configure(outbound_policy)
        # Signal receivers import the models, which only exist once the app registry is ready.
        from . import auth_audit  # noqa: F401
