"""TelemetrySnapshot, moved from the vehicles app with its table (no data moves)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models



MODELS = ('telemetrysnapshot',)


def adopt_content_types(apps, schema_editor):
    """Permissions and admin history follow the models: their content types change app."""
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if not content_type.objects.filter(app_label="telemetry", model=model).exists():
            content_type.objects.filter(app_label="vehicles", model=model).update(app_label="telemetry")


def return_content_types(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.filter(app_label="telemetry", model__in=MODELS).update(app_label="vehicles")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('vehicles', '0001_initial'),
    ]

    operations = [
        # The tables exist already (created by the vehicles app): only Django's idea of
        # which app owns them changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='TelemetrySnapshot',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('captured_at', models.DateTimeField()),
                        ('received_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('source', models.CharField(choices=[('pull', 'Pulled (REST)'), ('stream', 'Streamed (MQTT)')], max_length=10)),
                        ('message_id', models.CharField(blank=True, default='', max_length=100)),
                        ('data', models.JSONField()),
                        ('fields_meta', models.JSONField(blank=True, default=dict)),
                        ('odometer_km', models.FloatField(blank=True, null=True)),
                        ('fuel_level', models.FloatField(blank=True, null=True)),
                        ('battery_level', models.FloatField(blank=True, null=True)),
                        ('estimated_range_km', models.FloatField(blank=True, null=True)),
                        ('charging_state', models.CharField(blank=True, default='', max_length=40)),
                        ('latitude', models.FloatField(blank=True, null=True)),
                        ('longitude', models.FloatField(blank=True, null=True)),
                        ('heading_deg', models.FloatField(blank=True, null=True)),
                        ('speed_kmh', models.FloatField(blank=True, null=True)),
                        ('ignition', models.CharField(blank=True, default='', max_length=20)),
                        ('doors_locked', models.BooleanField(blank=True, null=True)),
                        ('vehicle', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='telemetry', to='vehicles.vehicle')),
                    ],
                    options={
                        'db_table': 'vehicles_telemetrysnapshot',
                        'ordering': ['-captured_at'],
                        'indexes': [models.Index(fields=['vehicle', '-captured_at'], name='vehicles_te_vehicle_29a1c2_idx'), models.Index(fields=['captured_at'], name='vehicles_te_capture_d80bc5_idx')],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('message_id', ''), _negated=True), fields=('vehicle', 'message_id'), name='unique_telemetry_message_per_vehicle')],
                    },
                ),
            ],
        ),
        migrations.RunPython(adopt_content_types, return_content_types),
    ]
