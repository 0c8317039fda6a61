"""The Celery application. Configuration lives in settings (CELERY_* names); every installed
app's ``tasks`` module is found by autodiscovery."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleetportal.settings")

app = Celery("fleetportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
