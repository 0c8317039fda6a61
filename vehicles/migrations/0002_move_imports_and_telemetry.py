"""ImportJob, ImportChunk and TelemetrySnapshot now belong to the imports and telemetry apps.

Only Django's state changes: the tables stay as they are (the new apps keep their names).
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("vehicles", "0001_initial"),
        ("imports", "0001_initial"),
        ("telemetry", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ImportChunk"),
                migrations.DeleteModel(name="ImportJob"),
                migrations.DeleteModel(name="TelemetrySnapshot"),
            ],
        ),
    ]
