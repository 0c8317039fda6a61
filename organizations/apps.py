from django.apps import AppConfig


class OrganizationsConfig(AppConfig):
    name = "organizations"
    verbose_name = "Organizations"

    def ready(self) -> None:
        from organizations import login_throttle  # noqa: F401  (connects the failed-login log)
