"""Credential forms. Secrets are write-only: never rendered back, blank means "keep the current one"."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from clearance.models import Credential
from clearance.services.credentials import (
    MAX_KEY_FILE_BYTES,
    SECRET_FIELDS,
    KeyMaterial,
    parse_private_key,
    required_fields_missing,
    set_secret,
)
from organizations.models import Organization


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value (for pasted keys)."""

    def format_value(self, value: Any) -> None:
        return None


class WriteOnlyPasswordInput(forms.PasswordInput):
    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(
            attrs={"autocomplete": "new-password", **(attrs or {})}, render_value=False
        )


def _set_on(credential: Credential, secret: str) -> str:
    when = getattr(credential, f"{secret}_set_at", None)
    if credential.pk and getattr(credential, secret) and when:
        return f"Set on {when:%d %b %Y %H:%M} UTC. Leave blank to keep it; type a new one to replace it."
    return ""


class CredentialForm(forms.ModelForm[Credential]):
    """Add or edit a credential. Key material: upload the console's JSON file or paste a PEM."""

    client_secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=True,
        widget=WriteOnlyPasswordInput(),
        help_text="From the High Mobility console, API Credentials → OAuth client.",
    )
    private_key_file = forms.FileField(
        label="Private key file",
        required=False,
        help_text=(
            "The JSON file the console downloads when you create a private key (it holds the "
            "key and its id), or a PEM file."
        ),
    )
    private_key_pem = forms.CharField(
        label="…or paste the private key (PEM)",
        required=False,
        strip=False,
        widget=WriteOnlyTextarea(attrs={"rows": 5, "spellcheck": "false", "autocomplete": "off"}),
    )
    webhook_secret = forms.CharField(
        label="Webhook secret",
        required=False,
        strip=True,
        widget=WriteOnlyPasswordInput(),
        help_text="The secret you set for this application's webhook in the console.",
    )
    mqtt_client_key = forms.CharField(
        label="MQTT client key (PEM)",
        required=False,
        strip=False,
        widget=WriteOnlyTextarea(attrs={"rows": 4, "spellcheck": "false", "autocomplete": "off"}),
        help_text="Only for streaming telemetry over MQTT.",
    )

    class Meta:
        model = Credential
        fields = [
            "name",
            "environment",
            "auth_mode",
            "client_id",
            "private_key_id",
            "service_account_key_id",
            "app_id",
            "mqtt_client_certificate",
        ]
        widgets = {
            "mqtt_client_certificate": forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        }
        labels = {"auth_mode": "Sign-in method"}
        help_texts = {
            "name": "A name for you, e.g. “Production app”.",
            "environment": "Which High Mobility platform the application lives on.",
            "client_id": "The OAuth client id (a UUID) from the console.",
            "private_key_id": "Filled in from the JSON key file; only needed with a bare PEM.",
        }

    def __init__(self, *args: Any, organization: Organization | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.organization = organization or getattr(self.instance, "organization", None)
        choices = list(Credential.Environment.choices)
        if not settings.SIMULATOR_ENABLED and self.instance.environment != "simulator":
            choices = [c for c in choices if c[0] != Credential.Environment.SIMULATOR]
        environment = self.fields["environment"]
        assert isinstance(environment, forms.ChoiceField)
        environment.choices = choices
        for secret in ("client_secret", "webhook_secret", "mqtt_client_key"):
            hint = _set_on(self.instance, secret)
            if hint:
                self.fields[secret].help_text = hint
        hint = _set_on(self.instance, "private_key")
        if hint:
            self.fields["private_key_file"].help_text = f"{hint} (Upload or paste to replace.)"
        self.secret_status = {
            name: getattr(self.instance, f"{name}_set_at", None) if self.instance.pk else None
            for name in ("client_secret", "private_key", "webhook_secret", "mqtt_client_key")
        }

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        taken = Credential.objects.filter(organization=self.organization, name=name)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if self.organization is not None and taken.exists():
            raise ValidationError("Another credential of this organization has that name.")
        return name

    def clean_environment(self) -> str:
        environment: str = self.cleaned_data["environment"]
        if (
            self.instance.pk
            and environment != self.instance.environment
            and self.instance.clearances.exists()
        ):
            raise ValidationError(
                "Vehicles are already registered through this credential, so its environment "
                "cannot change. Add a new credential for the other environment."
            )
        return environment

    def clean_private_key_file(self) -> KeyMaterial | None:
        upload = self.cleaned_data.get("private_key_file")
        if not upload:
            return None
        if upload.size > MAX_KEY_FILE_BYTES:
            raise ValidationError("The key file is too large to be a private key file.")
        return parse_private_key(upload.read())

    def clean_private_key_pem(self) -> KeyMaterial | None:
        text = self.cleaned_data.get("private_key_pem") or ""
        if not text.strip():
            return None
        return parse_private_key(text)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("private_key_file")
        pasted = cleaned.get("private_key_pem")
        if upload and pasted:
            raise ValidationError("Upload a key file or paste a key, not both.")
        material = upload or pasted
        self._new_secrets: dict[str, str] = {}
        if material is not None:
            self._new_secrets["private_key"] = material.pem
            if material.key_id:
                mode = cleaned.get("auth_mode")
                target = (
                    "service_account_key_id"
                    if mode == Credential.AuthMode.SERVICE_ACCOUNT
                    else "private_key_id"
                )
                cleaned[target] = material.key_id
        for secret in ("client_secret", "webhook_secret"):
            if cleaned.get(secret):
                self._new_secrets[secret] = cleaned[secret]
        if (cleaned.get("mqtt_client_key") or "").strip():
            self._new_secrets["mqtt_client_key"] = cleaned["mqtt_client_key"].strip() + "\n"
        if self.errors:
            return cleaned
        # Check completeness on a throw-away copy of the instance with the new values.
        probe = Credential(
            auth_mode=cleaned.get("auth_mode") or "",
            client_id=cleaned.get("client_id") or "",
            private_key_id=cleaned.get("private_key_id") or "",
            service_account_key_id=cleaned.get("service_account_key_id") or "",
            client_secret=self._new_secrets.get("client_secret") or self.instance.client_secret,
            private_key=self._new_secrets.get("private_key") or self.instance.private_key,
        )
        for field, message in required_fields_missing(probe).items():
            target = "private_key_file" if field == "private_key" else field
            self.add_error(target, message)
        return cleaned

    def _post_clean(self) -> None:
        # Whatever the field list (the admin builds its own), a blank secret field must never
        # overwrite the stored secret: only save() writes secrets, through set_secret().
        stored = {name: getattr(self.instance, name) for name in SECRET_FIELDS}
        super()._post_clean()  # type: ignore[misc]  # ModelForm's, absent from the stubs
        for name, value in stored.items():
            setattr(self.instance, name, value)

    def save(self, commit: bool = True) -> Credential:
        credential = super().save(commit=False)
        if self.organization is not None and not credential.organization_id:
            credential.organization = self.organization
        for name, value in getattr(self, "_new_secrets", {}).items():
            set_secret(credential, name, value)
        if commit:
            credential.save()
        return credential
