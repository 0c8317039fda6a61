# The fleet counters (0004_fleet_status_counts) and durable HM work (0004_hm_work, 0005) were
# written side by side; neither touches the other's tables.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("clearance", "0004_fleet_status_counts"),
        ("clearance", "0005_webhook_delivery_durable"),
    ]

    operations = []
