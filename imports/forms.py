from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from clearance.wording import credential_label

NO_CREDENTIAL = "none"


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Columns vin and brand are required; license_plate, nickname, tags "
        "(words or key=value pairs, separated by semicolons or commas) and odometer_km are "
        "optional.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.tsv,text/csv"}),
    )
    credential = forms.ChoiceField(
        label="HM application",
        required=False,
        help_text="Clearance requests for the new vehicles are sent with this application.",
    )
    update_existing = forms.BooleanField(
        label="Update vehicles already in the fleet",
        required=False,
        help_text="Otherwise rows whose VIN is already in the fleet are skipped. "
        "Empty cells never clear a value.",
    )
    check_eligibility = forms.BooleanField(
        label="Check eligibility of new VINs with HM during the preview",
        required=False,
        help_text=f"One HM call per VIN; only the first {settings.IMPORT_ELIGIBILITY_CHECK_LIMIT} "
        "new VINs are checked.",
    )

    def __init__(self, *args: Any, credentials: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.credentials = {str(c.public_id): c for c in credentials or []}
        choices = [
            (key, credential_label(c.name, c.environment)) for key, c in self.credentials.items()
        ]
        choices.append((NO_CREDENTIAL, "None: add the vehicles, request clearance later"))
        credential_field = self.fields["credential"]
        assert isinstance(credential_field, forms.ChoiceField)
        if len(self.credentials) > 1:
            # Several applications: a person chooses; never "None" (or the first) by default.
            choices.insert(0, ("", "Choose an HM application…"))
        else:
            credential_field.initial = choices[0][0]
        credential_field.choices = choices

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit_mb = settings.IMPORT_MAX_UPLOAD_MB
        if upload.size > limit_mb * 1024 * 1024:
            raise forms.ValidationError(
                f"The file is {upload.size / 1024 / 1024:.1f} MB; the limit is {limit_mb} MB. "
                "Split it into smaller files."
            )
        return upload

    def clean_credential(self) -> Any:
        key = self.cleaned_data.get("credential") or ""
        if not key and len(self.credentials) > 1:
            raise forms.ValidationError(
                "Choose the HM application the clearance requests are sent with, or “None” to "
                "request clearance later."
            )
        return self.credentials.get(key)


class ConfirmForm(forms.Form):
    accept_skipped = forms.BooleanField(required=False)
