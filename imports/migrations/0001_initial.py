"""ImportJob and ImportChunk, moved from the vehicles app with their tables (no data moves)."""

import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models



MODELS = ('importjob', 'importchunk')


def adopt_content_types(apps, schema_editor):
    """Permissions and admin history follow the models: their content types change app."""
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if not content_type.objects.filter(app_label="imports", model=model).exists():
            content_type.objects.filter(app_label="vehicles", model=model).update(app_label="imports")


def return_content_types(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.filter(app_label="imports", model__in=MODELS).update(app_label="vehicles")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('vehicles', '0001_initial'),
        ('organizations', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The tables exist already (created by the vehicles app): only Django's idea of
        # which app owns them changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ImportJob',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('public_id', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                        ('original_name', models.CharField(blank=True, max_length=255)),
                        ('size', models.PositiveBigIntegerField(default=0, help_text='Bytes.')),
                        ('sha256', models.CharField(blank=True, db_index=True, max_length=64)),
                        ('update_existing', models.BooleanField(default=False)),
                        ('check_eligibility', models.BooleanField(default=False)),
                        ('credential_public_id', models.UUIDField(blank=True, null=True)),
                        ('status', models.CharField(choices=[('uploaded', 'Uploaded'), ('validating', 'Checking the file'), ('preview', 'Ready to confirm'), ('importing', 'Importing'), ('done', 'Done'), ('failed', 'Failed'), ('canceled', 'Canceled')], default='uploaded', max_length=20)),
                        ('total', models.PositiveIntegerField(default=0, help_text='Data rows in the file.')),
                        ('processed', models.PositiveIntegerField(default=0, help_text='Data rows imported so far.')),
                        ('created', models.PositiveIntegerField(default=0)),
                        ('updated', models.PositiveIntegerField(default=0)),
                        ('skipped', models.PositiveIntegerField(default=0, help_text='Already in the fleet, unchanged.')),
                        ('errors', models.PositiveIntegerField(default=0, help_text='Rows with errors (never imported).')),
                        ('warnings', models.PositiveIntegerField(default=0)),
                        ('queued_requests', models.PositiveIntegerField(default=0, help_text='Clearances queued for HM.')),
                        ('error_sample', models.JSONField(blank=True, default=list, help_text='The first row errors.')),
                        ('layout', models.JSONField(blank=True, default=dict, help_text='Detected encoding, delimiter, columns.')),
                        ('eligibility', models.JSONField(blank=True, default=dict)),
                        ('message', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('validated_at', models.DateTimeField(blank=True, null=True)),
                        ('confirmed_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('confirmed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='import_jobs', to='organizations.organization')),
                    ],
                    options={
                        'db_table': 'vehicles_importjob',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='ImportChunk',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('index', models.PositiveIntegerField()),
                        ('data', models.BinaryField()),
                        ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='chunks', to='imports.importjob')),
                    ],
                    options={
                        'db_table': 'vehicles_importchunk',
                        'ordering': ['job', 'index'],
                    },
                ),
                migrations.AddIndex(
                    model_name='importjob',
                    index=models.Index(fields=['organization', '-created_at'], name='vehicles_im_organiz_6aef1a_idx'),
                ),
                migrations.AddConstraint(
                    model_name='importchunk',
                    constraint=models.UniqueConstraint(fields=('job', 'index'), name='unique_import_chunk'),
                ),
            ],
        ),
        migrations.RunPython(adopt_content_types, return_content_types),
    ]
