from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Columns vin and brand are required; license_plate, nickname, tags "
        "(key=value;key=value, or with commas) and odometer_km are optional.",
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
        choices = [(key, str(c)) for key, c in self.credentials.items()]
        if len(choices) != 1:
            choices.insert(0, ("", "None: add the vehicles, request clearance later"))
        credential_field = self.fields["credential"]
        assert isinstance(credential_field, forms.ChoiceField)
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
        return self.credentials.get(key)


class ConfirmForm(forms.Form):
    accept_skipped = forms.BooleanField(required=False)
