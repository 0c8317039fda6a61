"""Forms of the fleet pages."""

from __future__ import annotations

from django import forms
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from clearance.models import Credential
from clearance.selectors import credentials_for
from clearance.wording import credential_label
from organizations.models import Organization
from vehicles import validation
from vehicles.brands import BRAND_CHOICES
from vehicles.models import Vehicle
from vehicles.validation import InvalidValue, format_tags, normalize_vin, parse_brand, parse_tags

__all__ = ["VehicleAddForm", "VehicleEditForm", "format_tags", "parse_tags"]


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


class RuleField(forms.CharField):
    """A text field checked by a rule of vehicles.validation (the same one the CSV import and
    the API use), whose message is shown as it is."""

    def __init__(self, *args, rule, **kwargs):
        self.rule = rule
        super().__init__(*args, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        try:
            return self.rule(value)
        except InvalidValue as exc:
            raise forms.ValidationError(str(exc)) from exc

    def has_changed(self, initial, data) -> bool:
        """Compared as the rule reads them: "1200" is the stored 1200, "vans" is {"vans": ""}."""
        try:
            before = self.rule(self.to_python("" if initial is None else str(initial)))
            return self.rule(self.to_python(data)) != before
        except InvalidValue:
            return True


def _plate(value: str) -> str:
    return validation.clean_text(value, limit=validation.MAX_LICENSE_PLATE, what="licence plate")


def _nickname(value: str) -> str:
    return validation.clean_text(value, limit=validation.MAX_NICKNAME, what="nickname")


TAGS_HELP = "Words or key=value pairs separated by commas or semicolons, e.g. “vans, depot=berlin”."
ODOMETER_LABEL = "Odometer for the carmaker (km)"


def odometer_field(help_text: str) -> RuleField:
    return RuleField(
        rule=validation.parse_odometer,
        label=ODOMETER_LABEL,
        required=False,
        help_text=help_text,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )


def tags_field() -> RuleField:
    return RuleField(rule=parse_tags, required=False, help_text=TAGS_HELP)


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
    license_plate = RuleField(rule=_plate, label="Licence plate", required=False)
    nickname = RuleField(
        rule=_nickname, required=False, help_text="A name your team recognises, e.g. “Van 12”."
    )
    tags = tags_field()
    odometer_km = odometer_field(
        "The reading sent with the clearance request: some carmakers check it before approving "
        "(control measure). Leave empty if unknown."
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


class VehicleEditForm(forms.ModelForm):
    """The details a fleet manager keeps up to date. VIN and brand are what HM knows the vehicle
    by, so they cannot change; a different VIN is a different vehicle."""

    license_plate = RuleField(rule=_plate, label="Licence plate", required=False)
    nickname = RuleField(
        rule=_nickname, required=False, help_text=VehicleAddForm.base_fields["nickname"].help_text
    )
    tags = tags_field()
    odometer_km = odometer_field(
        "The control value sent with the next clearance request (some carmakers check it); a "
        "request already sent keeps the value it went with. What the car itself reports is "
        "under Telemetry."
    )

    class Meta:
        model = Vehicle
        fields = ["license_plate", "nickname", "tags", "odometer_km"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["tags"] = format_tags(self.instance.tags)
