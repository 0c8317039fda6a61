from django.apps import AppConfig


class DurableConfig(AppConfig):
    name = "durable"
    verbose_name = "Durable work"

    def ready(self) -> None:
        from durable import shutdown

        shutdown.connect()
