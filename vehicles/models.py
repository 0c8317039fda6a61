import uuid

from django.db import models

from organizations.models import Organization
from vehicles.brands import BRAND_CHOICES


class Vehicle(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="vehicles"
    )
    vin = models.CharField("VIN", max_length=17)
    brand = models.CharField(max_length=32, choices=BRAND_CHOICES)
    license_plate = models.CharField("licence plate", max_length=20, blank=True)
    nickname = models.CharField(max_length=100, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    odometer_km = models.PositiveIntegerField(
        "odometer (km)",
        null=True,
        blank=True,
        help_text="Sent to HM as a control measure where given.",
    )
    last_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="Time of the newest telemetry."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["vin"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "vin"], name="unique_vin_per_organization"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "brand"]),
            models.Index(fields=["organization", "license_plate"]),
            models.Index(fields=["organization", "created_at"]),
        ]

    def __str__(self):
        return self.nickname or self.vin
