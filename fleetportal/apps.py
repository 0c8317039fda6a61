from django.apps import AppConfig


class FleetPortalConfig(AppConfig):
    """The project itself as an app: its deploy checks and the ``demo`` command."""

    name = "fleetportal"
    verbose_name = "FleetPortal"

    def ready(self) -> None:
        from fleetportal import checks  # noqa: F401  (registers the deploy checks)
