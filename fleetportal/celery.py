"""The Celery application. Configuration lives in settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleetportal.settings")

app = Celery("fleetportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Task modules inside sub-packages of the vehicles app.
app.autodiscover_tasks(["vehicles.imports", "vehicles.telemetry"])
# Credential pages' background tasks (clearance/credential_tasks.py).
app.autodiscover_tasks(["clearance"], related_name="credential_tasks")
