"""Delivered and canceled deliveries are both finished durable work ("done"), told apart by
``delivered_at`` (``Delivery.status``); pending and failed keep their names."""

from django.db import migrations
from django.db.models.functions import Coalesce

MODELS = ("OutgoingEmail", "EventDelivery")


def deliveries_become_work(apps, schema_editor):
    """Delivered and canceled deliveries are finished work; ``delivered_at`` tells them apart
    (a delivered row is given one if it lacked it, so it never reads as canceled)."""
    for name in MODELS:
        model = apps.get_model("notifications", name)
        model.objects.filter(state="delivered", delivered_at__isnull=True).update(
            delivered_at=Coalesce("last_attempt_at", "created_at")
        )
        model.objects.filter(state__in=["delivered", "canceled"]).update(state="done")


def work_becomes_deliveries(apps, schema_editor):
    for name in MODELS:
        model = apps.get_model("notifications", name)
        model.objects.filter(state="done", delivered_at__isnull=False).update(state="delivered")
        model.objects.filter(state="done").update(state="canceled")
        model.objects.filter(state="running").update(state="pending", claim="")


class Migration(migrations.Migration):
    dependencies = [("notifications", "0002_deliveries_become_durable_work")]

    operations = [migrations.RunPython(deliveries_become_work, work_becomes_deliveries)]
