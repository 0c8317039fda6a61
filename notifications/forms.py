"""Forms of the alert rule, webhook endpoint and personal notification settings pages."""

from __future__ import annotations

from django import forms

from notifications import conditions, http, outgoing
from notifications.models import (
    AlertRule,
    NotificationSettings,
    RuleKind,
    WebhookEndpoint,
    time_zone_choices,
)
from telemetry.parse import ParsedTelemetry
from telemetry.selectors import FIELD_LABELS
from vehicles.forms import format_tags, parse_tags

FAILURE_FIELDS = [(name, FIELD_LABELS.get(name, name)) for name in ParsedTelemetry.SCALAR_FIELDS]


class AlertRuleForm(forms.ModelForm):
    tag = forms.CharField(
        label="Only vehicles with the tag",
        required=False,
        max_length=170,
        help_text="Leave empty for every vehicle. A tag as on the vehicle: vans, or depot=berlin.",
    )
    field = forms.ChoiceField(
        label="Telemetry field",
        choices=[("", "—"), *FAILURE_FIELDS],
        required=False,
        help_text="For “Vehicle reports a failure”: the value the carmaker could not read.",
    )

    class Meta:
        model = AlertRule
        fields = ["name", "kind", "threshold", "field", "email_default", "enabled"]
        labels = {"kind": "Alert when", "threshold": "Threshold", "enabled": "Rule is on"}
        help_texts = {
            "threshold": "Days for “Pending too long”, hours for “Approved vehicle silent”, "
            "percent for battery and fuel."
        }

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization
        kind_field = self.fields["kind"]
        assert isinstance(kind_field, forms.ChoiceField)
        kind_field.choices = [
            (kind, f"{c.label}: {c.watches}") for kind, c in conditions.CONDITIONS.items()
        ]
        if self.instance.pk and self.instance.tag_key:
            self.initial["tag"] = format_tags({self.instance.tag_key: self.instance.tag_value})

    def clean_name(self):
        name = " ".join(self.cleaned_data["name"].split())
        taken = AlertRule.objects.filter(organization=self.organization, name__iexact=name)
        if taken.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("Another rule already has this name.")
        return name

    def clean_tag(self):
        tags = parse_tags(self.cleaned_data.get("tag", ""))
        if len(tags) > 1:
            raise forms.ValidationError("Name one tag only (a rule for each tag, or no tag).")
        return next(iter(tags.items()), ("", ""))

    def clean(self):
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        if not kind:
            return cleaned
        condition = conditions.condition(kind)
        threshold = cleaned.get("threshold")
        if condition.has_threshold:
            if threshold is None:
                self.add_error("threshold", f"Say how many {condition.unit} for this rule.")
            elif not (condition.minimum or 0) <= threshold <= (condition.maximum or 0):
                self.add_error(
                    "threshold",
                    f"Choose between {condition.minimum:g} and {condition.maximum:g} "
                    f"{condition.unit}.",
                )
        else:
            cleaned["threshold"] = None
        if kind == RuleKind.FIELD_FAILURE:
            if not cleaned.get("field"):
                self.add_error("field", "Choose the telemetry field whose failures to watch.")
        else:
            cleaned["field"] = ""
        return cleaned

    def save(self, commit=True):
        rule = super().save(commit=False)
        rule.organization = self.organization
        rule.tag_key, rule.tag_value = self.cleaned_data.get("tag") or ("", "")
        if commit:
            rule.save()
        return rule


class WebhookEndpointForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        label="Events",
        choices=list(outgoing.EVENT_TYPES.items()),
        widget=forms.CheckboxSelectMultiple,
        help_text="Which events this endpoint receives.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "event_types"]
        labels = {"url": "Endpoint URL"}
        help_texts = {
            "url": "Where FleetPortal POSTs signed JSON events, e.g. "
            "https://fleet-tools.example.com/hooks/fleetportal.",
            "description": "Optional: what receives these events.",
        }

    def clean_url(self):
        url = self.cleaned_data["url"].strip()
        try:
            http.resolve(url)  # the scheme, and every address the host has now
        except http.RefusedError as exc:
            raise forms.ValidationError(exc.message) from None
        except http.TransientError:
            raise forms.ValidationError(
                "This host name cannot be resolved right now; check it, or try again later."
            ) from None
        return url


class NotificationSettingsForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        label="Your time zone",
        choices=time_zone_choices,
        help_text="Digests are sent, and notification times shown, in this time zone.",
    )
    digest_hour = forms.TypedChoiceField(
        label="Daily digest at",
        coerce=int,
        choices=[(hour, f"{hour:02d}:00") for hour in range(24)],
    )

    class Meta:
        model = NotificationSettings
        fields = ["time_zone", "digest_hour"]
