"""The named place form: a name, a centre and a radius (typed, or drawn on the map)."""

from __future__ import annotations

from django import forms

from organizations.models import Organization
from telemetry.models import Place
from vehicles.geo import MAX_RADIUS_M, MIN_RADIUS_M


class PlaceForm(forms.ModelForm):
    latitude = forms.FloatField(
        min_value=-90,
        max_value=90,
        help_text="Decimal degrees, e.g. 52.5200 (north is positive).",
        error_messages={
            "invalid": "Type the latitude as a decimal number, e.g. 52.5200.",
            "min_value": "A latitude lies between -90 and 90.",
            "max_value": "A latitude lies between -90 and 90.",
        },
    )
    longitude = forms.FloatField(
        min_value=-180,
        max_value=180,
        help_text="Decimal degrees, e.g. 13.4050 (east is positive).",
        error_messages={
            "invalid": "Type the longitude as a decimal number, e.g. 13.4050.",
            "min_value": "A longitude lies between -180 and 180.",
            "max_value": "A longitude lies between -180 and 180.",
        },
    )
    radius_m = forms.IntegerField(
        label="Radius (m)",
        min_value=MIN_RADIUS_M,
        max_value=MAX_RADIUS_M,
        help_text=f"From {MIN_RADIUS_M} m to {MAX_RADIUS_M // 1000} km.",
        error_messages={
            "invalid": "Type the radius in whole metres, e.g. 300.",
            "min_value": f"A place is at least {MIN_RADIUS_M} m across its radius.",
            "max_value": f"A place's radius is at most {MAX_RADIUS_M // 1000} km.",
        },
    )

    class Meta:
        model = Place
        fields = ["name", "latitude", "longitude", "radius_m"]
        help_texts = {"name": "As the fleet list and the map will say it: “at Depot North”."}

    def __init__(self, *args, organization: Organization, **kwargs):
        self.organization = organization
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        name = " ".join((self.cleaned_data.get("name") or "").split())
        if not name:
            raise forms.ValidationError("Give the place a name.")
        taken = Place.objects.filter(organization=self.organization, name__iexact=name)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"Your organization already has a place called “{name}”.")
        return name

    def save(self, commit: bool = True) -> Place:
        self.instance.organization = self.organization
        return super().save(commit=commit)
