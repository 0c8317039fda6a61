"""The JSON form field of the admin pages, reading through ``untrusted.parse_json``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from untrusted import UntrustedJsonError, parse_json


class UntrustedJSONField(forms.JSONField):
    """Django's JSON form field reading through ``parse_json``: deep nesting or text the database
    cannot store is a form error in words, not a RecursionError (500) or a DataError on save.
    Used for the JSON fields staff edit in the admin (``formfield_overrides``)."""

    def to_python(self, value: Any) -> Any:
        if self.disabled or value in self.empty_values or not isinstance(value, str):
            return super().to_python(value)
        try:
            parse_json(value)
        except UntrustedJsonError as exc:
            raise ValidationError(str(exc), code="invalid") from None
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled or data is None:
            return super().bound_data(data, initial)
        try:
            return parse_json(data)
        except UntrustedJsonError:
            return InvalidJSONInput(data)


JSON_FORM_FIELD = {"form_class": UntrustedJSONField}
