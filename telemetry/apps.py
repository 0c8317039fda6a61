from django.apps import AppConfig


class TelemetryConfig(AppConfig):
    name = "telemetry"
    verbose_name = "Telemetry"

    def ready(self) -> None:
        from durable import work
        from telemetry import schedule

        # The reconciler wakes every pull lane without a live message while pulls are due.
        work.register("telemetry.pulls", due=schedule.due_lanes, wake=schedule.wake_if_asleep)
