"""Forms of the fleet pages."""

from __future__ import annotations

import re

from django import forms
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from clearance.models import Credential
from clearance.selectors import credentials_for
from clearance.wording import credential_label
from organizations.models import Organization
from vehicles.brands import BRAND_CHOICES
from vehicles.models import Vehicle
from vehicles.validation import InvalidValue, normalize_vin, parse_brand


def clean_vin_value(value: str) -> tuple[str, list[str]]:
    """(vin, warnings) or a ValidationError with a sentence a fleet manager understands."""
    try:
        return normalize_vin(value)
    except InvalidValue as exc:
        raise forms.ValidationError(str(exc)) from exc


def duplicate_vin_error(organization: Organization, vin: str) -> SafeString | None:
    """ "… is already in your fleet" with a link to that vehicle, or None when it is not."""
    existing = (
        Vehicle.objects.filter(organization=organization, vin=vin)
        .values_list("public_id", flat=True)
        .first()
    )
    if existing is None:
        return None
    return format_html(
        '{} is already in your fleet. <a href="{}">Open its page</a>.',
        vin,
        reverse("vehicles:detail", args=[existing]),
    )


class CredentialChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Credential) -> str:
        return credential_label(obj.name, obj.environment)


class VehicleAddForm(forms.Form):
    vin = forms.CharField(
        label="VIN",
        max_length=40,
        help_text="17 characters, letters and digits; never I, O or Q.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "class": "mono"}
        ),
    )
    brand = forms.ChoiceField(
        choices=[("", "Choose a brand…"), *BRAND_CHOICES],
        help_text="The carmaker, as High Mobility lists it.",
    )
    license_plate = forms.CharField(label="Licence plate", max_length=20, required=False)
    nickname = forms.CharField(
        max_length=100, required=False, help_text="A name your team recognises, e.g. “Van 12”."
    )
    tags = forms.CharField(
        max_length=500,
        required=False,
        help_text=(
            "Separated by commas or semicolons, e.g. “berlin, vans” or “vans; depot=berlin” "
            "(key=value pairs like “depot=berlin” are fine)."
        ),
    )
    odometer_km = forms.IntegerField(
        label="Odometer (km)",
        min_value=0,
        max_value=5_000_000,
        required=False,
        help_text="Some carmakers check it before approving (control measure). Leave empty if unknown.",
    )
    credential = CredentialChoiceField(
        queryset=Credential.objects.none(),
        empty_label=None,
        label="HM application",
        help_text="The High Mobility application the request is sent with.",
        error_messages={
            "required": "Choose the HM application the clearance request is sent with.",
            "invalid_choice": "That HM application does not exist (any more); choose another.",
        },
    )

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization
        self.vin_warnings: list[str] = []
        # Live VIN feedback while typing (errors, the check-digit warning).
        self.fields["vin"].widget.attrs.update(
            {
                "hx-get": reverse("vehicles:check-vin"),
                "hx-trigger": "input changed delay:500ms",
                "hx-target": "#vin-feedback",
                "hx-swap": "outerHTML",
                "aria-describedby": "vin-feedback id_vin_helptext",
            }
        )
        credentials = credentials_for(organization)
        credential_field = self.fields["credential"]
        assert isinstance(credential_field, CredentialChoiceField)
        credential_field.queryset = credentials
        self.credential_list = list(credentials)
        if len(self.credential_list) == 1:
            self.fields["credential"].initial = self.credential_list[0].pk
        else:
            # Several applications: nobody should send with the first by accident.
            credential_field.empty_label = "Choose an HM application…"

    @property
    def has_credentials(self) -> bool:
        return bool(self.credential_list)

    def clean_vin(self) -> str:
        vin, warnings = clean_vin_value(self.cleaned_data["vin"])
        duplicate = duplicate_vin_error(self.organization, vin)
        if duplicate:
            # Its check digit no longer matters: the vehicle is there already.
            raise forms.ValidationError(duplicate)
        self.vin_warnings = warnings
        return vin

    def clean_brand(self) -> str:
        try:
            return parse_brand(self.cleaned_data["brand"])
        except InvalidValue as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_tags(self) -> dict[str, str]:
        return parse_tags(self.cleaned_data.get("tags", ""))


class VehicleEditForm(forms.ModelForm):
    """The details a fleet manager keeps up to date. VIN and brand are what HM knows the vehicle
    by, so they cannot change; a different VIN is a different vehicle."""

    tags = forms.CharField(
        max_length=500,
        required=False,
        help_text=VehicleAddForm.base_fields["tags"].help_text,
    )
    odometer_km = forms.IntegerField(
        label="Odometer (km)",
        min_value=0,
        max_value=5_000_000,
        required=False,
        help_text=(
            "Sent with the next clearance request (some carmakers check it); a request already "
            "sent keeps the value it went with."
        ),
    )

    class Meta:
        model = Vehicle
        fields = ["license_plate", "nickname", "tags", "odometer_km"]
        labels = {"license_plate": "Licence plate"}
        help_texts = {"nickname": VehicleAddForm.base_fields["nickname"].help_text}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["tags"] = format_tags(self.instance.tags)

    def clean_tags(self) -> dict[str, str]:
        return parse_tags(self.cleaned_data.get("tags", ""))


# Commas as people type them, semicolons as the CSV import and export write them.
TAG_SEPARATORS = re.compile(r"[,;]")


def parse_tags(text: str) -> dict[str, str]:
    """ "vans, depot=berlin" or "vans; depot=berlin" -> {"vans": "", "depot": "berlin"}
    (Vehicle.tags is a JSON object)."""
    tags: dict[str, str] = {}
    for part in TAG_SEPARATORS.split(text or ""):
        part = part.strip()
        if not part:
            continue
        key, _, value = part.partition("=")
        key = key.strip()[:50]
        if key:
            tags[key] = value.strip()[:100]
    return tags


def format_tags(tags: dict | list | None) -> str:
    if not tags:
        return ""
    if isinstance(tags, list):
        return ", ".join(str(tag) for tag in tags)
    return ", ".join(f"{key}={value}" if value else str(key) for key, value in tags.items())
